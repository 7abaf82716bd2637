/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-fs device layer: queue threads, the per-request record, the libfuse
 * session(s) and the reply path (see fuse_virtio.h for the request path).
 *
 * Locking (vhost_user.h): pointers into guest memory (ring, wr_iov) are only
 * used while dev->vu.lock is held for reading.
 *   - A queue thread holds the read lock across a batch (pop, inline runs,
 *     replies, pushes). Its inline replies are pushed as they are made and
 *     the guest is notified once when the ring runs empty, every
 *     FV_BATCH_MAX replies, and before an exclusive section drops the lock
 *     (fv_batch_flush); those requests finish after that notification.
 *   - Pool workers hold it around each request.
 *   - Side-pool requests (blocking ops) run without it on a private copy of
 *     the request and take it only to reply.
 *   - Every reply compares vu.mem_generation with the value seen at pop: a
 *     request queued or blocked across a memory table change has stale
 *     wr_iov pointers, so its reply is dropped and the chain returned empty.
 *   - INIT and DESTROY run exclusively (dev->excl_lock, side pool drained,
 *     vu.lock for writing) on the queue thread that popped them, so the
 *     session can be replaced and the filesystem's init/destroy never run
 *     concurrently with another FUSE op.
 * Lock order: excl_lock -> side_lock -> vu.lock; q->lock and side_lock are
 * leaves. A thread never waits for excl_lock or the write lock while it
 * holds the read lock.
 */
#include "fuse_virtio.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "dispatch.h"
#include "fuse_validate.h"
#include "log.h"
#include "stats.h"
#include "trace_events.h"
#include "vhost_user.h"
#include "virtqueue.h"

/*
 * The guest reuses its buffers: a reply one thread wrote into a buffer can
 * come back as a request another thread reads (or a reply buffer another
 * thread writes). That order is real -- used ring, then the guest, then
 * the avail ring -- but runs through another process, where
 * ThreadSanitizer cannot follow it. Tell it: every push releases, every
 * pop acquires, on one object per device (a guest may move a buffer from
 * one queue to another). Nothing in other builds.
 */
#ifdef __SANITIZE_THREAD__
#include <sanitizer/tsan_interface.h>
#define fv_tsan_guest_release(dev) __tsan_release(&(dev)->vu.mem)
#define fv_tsan_guest_acquire(dev) __tsan_acquire(&(dev)->vu.mem)
#else
#define fv_tsan_guest_release(dev) ((void)(dev))
#define fv_tsan_guest_acquire(dev) ((void)(dev))
#endif

/*
 * Inline replies pushed by the queue thread before it notifies the guest
 * once for all of them (fv_batch_flush). The ring running empty flushes
 * earlier; this bounds how long a finished reply can wait for its
 * notification while the guest keeps the ring busy.
 */
#define FV_BATCH_MAX 32

/* How often a stopping queue re-interrupts side-pool lock waits. */
#define FV_INTERRUPT_PERIOD_NS (10 * 1000 * 1000)
/* ...and says so every second it keeps waiting. */
#define FV_INTERRUPT_WARN_ROUNDS 100

/* A libfuse session and what it has seen. */
struct fv_session {
    struct fuse_session *se;
    int refs;                   /* atomic; the device holds one */
    /* written under vu.lock for writing (exclusive section) */
    bool got_init;
    bool got_destroy;
    unsigned int vflags;        /* FV_VALIDATE_* negotiated at INIT */
};

struct fv_queue {
    struct fv_dev *dev;
    unsigned int idx;
    /* vhost-user thread only */
    bool running;
    pthread_t thread;
    int stop_fd;                /* eventfd: the queue thread exits */
    /* queue thread only (set before it starts) */
    int kick_fd;
    struct vq_elem *elem;       /* pop scratch */
    bool stopping;              /* atomic: queue_stop() in progress */

    /* queue thread only: inline replies pushed, notification pending */
    struct fv_req *batch_head;
    struct fv_req **batch_tail;
    unsigned int batch_n;

    pthread_mutex_t lock;
    pthread_cond_t drained;     /* inflight reached 0 */
    unsigned int inflight;      /* popped and not yet finished; written
                                 * under lock, atomically (auto reads it) */
    unsigned int inflight_max;  /* since the last stats reset */
};

/* A side-pool thread running a request (so a stop can interrupt it). */
struct fv_side_slot {
    bool used;
    pthread_t thread;
    const struct fv_queue *q;
};

struct fv_dev {
    struct vu_dev vu;
    struct fv_config cfg;
    unsigned int nqueues;
    struct fuse_lowlevel_ops ops;   /* the filesystem's, init wrapped */
    void (*fs_init)(void *userdata, struct fuse_conn_info *conn);
    void *userdata;
    struct dispatch dispatch;
    struct fv_queue queues[VU_MAX_QUEUES];
    struct stats *stats;            /* always allocated; fed if cfg.stats */

    /* Replaced under vu.lock for writing; read under the read lock. */
    struct fv_session *session;
    unsigned int init_vflags;       /* set by fv_op_init during INIT */

    pthread_mutex_t excl_lock;      /* one INIT/DESTROY at a time */

    pthread_mutex_t side_lock;
    pthread_cond_t side_cond;       /* gate opened or a slot freed */
    bool side_gate_closed;          /* an exclusive section is running */
    unsigned int side_running;
    struct fv_side_slot side_slots[DISPATCH_SIDE_THREADS];
};

static __thread struct fv_req *cur_req;
/* The queue whose batch this (queue) thread is running, or NULL. */
static __thread struct fv_queue *batch_q;
/* 0: not initialized, 1: ready, -1: unshare failed (no FUSE ops here) */
static __thread int thread_state;

static pthread_once_t signal_once = PTHREAD_ONCE_INIT;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Request timestamps cost nothing with --stats=off (STATS.md). */
static inline uint64_t req_now(const struct fv_dev *dev)
{
    return dev->cfg.stats ? now_ns() : 0;
}

static struct timespec deadline_after(long ns)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += ns;
    while (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static void cond_init_monotonic(pthread_cond_t *cond)
{
    pthread_condattr_t attr;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
}

struct fv_req *fv_current_req(void)
{
    return cur_req;
}

struct dispatch *fv_dev_dispatch(struct fv_dev *dev)
{
    return &dev->dispatch;
}

unsigned int fv_dev_num_queues(struct fv_dev *dev)
{
    return dev->nqueues;
}

bool fv_dev_queue_started(struct fv_dev *dev, unsigned int qidx)
{
    return qidx < dev->nqueues && dev->queues[qidx].running;
}

int fv_interrupt_signal(void)
{
    return SIGRTMIN + 3;
}

static void fv_interrupt_handler(int sig)
{
    (void)sig;
}

static void fv_install_signal(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = fv_interrupt_handler;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: an interrupted F_OFD_SETLKW must return EINTR. */
    sa.sa_flags = 0;
    if (sigaction(fv_interrupt_signal(), &sa, NULL) < 0)
        vfs_err("sigaction(interrupt signal): %s", strerror(errno));
}

/*
 * Once per thread that runs FUSE ops: passthrough changes umask (and may
 * change cwd) per request, which must not leak to other threads.
 */
static bool fv_thread_init(void)
{
    sigset_t set;

    if (thread_state)
        return thread_state > 0;
    if (unshare(CLONE_FS) < 0) {
        vfs_err("unshare(CLONE_FS): %s; this thread answers EIO",
                strerror(errno));
        thread_state = -1;
        return false;
    }
    /* Threads inherit their creator's mask; a stop must reach us. */
    sigemptyset(&set);
    sigaddset(&set, fv_interrupt_signal());
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    thread_state = 1;
    return true;
}

static void fv_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
    enum vfs_log_level l;

    if (level <= FUSE_LOG_ERR)
        l = VFS_LOG_ERR;
    else if (level == FUSE_LOG_WARNING)
        l = VFS_LOG_WARN;
    else if (level <= FUSE_LOG_INFO)
        l = VFS_LOG_INFO;
    else
        l = VFS_LOG_DEBUG;
    vfs_vlog(l, fmt, ap);
}

/* ---- iovec helpers ---- */

/* A WRITE's header and arguments; the data after them may stay in place. */
#define FV_WRITE_HEAD \
    (sizeof(struct fuse_in_header) + sizeof(struct fuse_write_in))

static size_t iov_total(const struct iovec *iov, unsigned int n)
{
    size_t t = 0;

    for (unsigned int i = 0; i < n; i++)
        t += iov[i].iov_len;
    return t;
}


/* Index of the entry of @src holding byte @*skip; @*skip becomes the
 * offset in it (@n when @src is shorter). */
static unsigned int iov_seek(const struct iovec *src, unsigned int n,
                             size_t *skip)
{
    unsigned int i = 0;

    while (i < n && *skip >= src[i].iov_len)
        *skip -= src[i++].iov_len;
    return i;
}

/* Copy up to @len bytes of @src, from @skip on, into the flat buffer @dst. */
static size_t iov_to_buf_at(const struct iovec *src, unsigned int n,
                            size_t skip, void *dst, size_t len)
{
    size_t done = 0;

    for (unsigned int i = iov_seek(src, n, &skip); i < n && done < len;
         i++, skip = 0) {
        size_t c = src[i].iov_len - skip;

        if (c > len - done)
            c = len - done;
        memcpy((uint8_t *)dst + done, (const uint8_t *)src[i].iov_base + skip,
               c);
        done += c;
    }
    return done;
}

static size_t iov_to_buf(const struct iovec *src, unsigned int n, void *dst,
                         size_t len)
{
    return iov_to_buf_at(src, n, 0, dst, len);
}

/*
 * @len bytes of @src from @skip on, as at most @max iovecs in @dst (no
 * copy). Returns the entries used.
 */
static unsigned int iov_slice(const struct iovec *src, unsigned int n,
                              size_t skip, size_t len, struct iovec *dst,
                              unsigned int max)
{
    unsigned int k = 0;

    for (unsigned int i = iov_seek(src, n, &skip); i < n && len && k < max;
         i++, skip = 0) {
        size_t c = src[i].iov_len - skip;

        if (c > len)
            c = len;
        dst[k].iov_base = (uint8_t *)src[i].iov_base + skip;
        dst[k].iov_len = c;
        k++;
        len -= c;
    }
    return k;
}

/* Scatter @src (all of it; the caller checked it fits) into @dst. */
static size_t iov_to_iov(const struct iovec *dst, unsigned int dn,
                         const struct iovec *src, unsigned int sn)
{
    unsigned int di = 0;
    size_t doff = 0, done = 0;

    for (unsigned int si = 0; si < sn; si++) {
        const uint8_t *s = src[si].iov_base;
        size_t left = src[si].iov_len;

        while (left && di < dn) {
            size_t c = dst[di].iov_len - doff;

            if (c > left)
                c = left;
            memcpy((uint8_t *)dst[di].iov_base + doff, s, c);
            s += c;
            left -= c;
            doff += c;
            done += c;
            if (doff == dst[di].iov_len) {
                di++;
                doff = 0;
            }
        }
    }
    return done;
}

/* ---- reply path ---- */

static struct vq *req_vq(const struct fv_req *req)
{
    return &req->q->dev->vu.vring[req->q->idx].vq;
}

static void fv_req_publish(struct fv_req *req, uint32_t len, bool lock);

/*
 * Write the reply @iov (NULL: none) into the chain and push it. Side-pool
 * requests take the read lock here; everyone else already holds it.
 */
static void fv_req_push(struct fv_req *req, const struct iovec *iov,
                        unsigned int count)
{
    struct fv_dev *dev = req->q->dev;
    bool lock = req->mode == FV_MODE_SIDE;
    size_t total = iov ? iov_total(iov, count) : 0;
    uint32_t len = 0;

    if (lock)
        pthread_rwlock_rdlock(&dev->vu.lock);
    if (dev->vu.mem_generation != req->mem_gen) {
        /* wr_iov points into the old mappings */
        vfs_warn_ratelimited("queue %u: guest memory changed under %s "
                             "(unique %llu); reply dropped", req->q->idx,
                             fuse_opcode_name(req->opcode),
                             (unsigned long long)req->unique);
        req->error = -EIO;
    } else if (total > req->wr_len) {
        vfs_warn_ratelimited("queue %u: %zu-byte reply to %s (unique %llu) "
                             "exceeds the %llu writable bytes", req->q->idx,
                             total, fuse_opcode_name(req->opcode),
                             (unsigned long long)req->unique,
                             (unsigned long long)req->wr_len);
        req->error = -EOVERFLOW;
        if (req->wr_len >= sizeof(struct fuse_out_header)) {
            struct fuse_out_header oh = {
                .len = sizeof(oh),
                .error = -EOVERFLOW,
                .unique = req->unique,
            };
            struct iovec oiov = { .iov_base = &oh, .iov_len = sizeof(oh) };

            len = (uint32_t)iov_to_iov(req->wr_iov, req->wr_num, &oiov, 1);
        }
    } else if (total) {
        struct fuse_out_header oh = { 0 };

        iov_to_buf(iov, count, &oh, sizeof(oh));
        req->error = oh.error;
        len = (uint32_t)iov_to_iov(req->wr_iov, req->wr_num, iov, count);
    }
    fv_req_publish(req, len, lock);
}

/*
 * Return @req's chain with @len bytes written (reply already in place) and
 * notify; releases the read lock fv_req_push() took when @lock.
 */
static void fv_req_publish(struct fv_req *req, uint32_t len, bool lock)
{
    struct fv_dev *dev = req->q->dev;

    req->out_len = len;
    req->t_reply = req_now(dev);
    trace_req_reply(req->q->idx, req->unique, req->error, len);
    fv_tsan_guest_release(dev);
    if (!lock && batch_q == req->q) {
        /* on the queue thread, in its batch: one notification at the end */
        struct vq *vq = req_vq(req);

        pthread_mutex_lock(&vq->push_lock);
        vq_push_locked(vq, req->head, len);
        pthread_mutex_unlock(&vq->push_lock);
        req->notify_deferred = true;
        return;
    }
    dispatch_pool_finishing();
    if (vq_push_notify(req_vq(req), req->head, len))
        trace_notify_sent(req->q->idx, req->unique);
    else
        trace_notify_suppressed(req->q->idx, req->unique);
    req->t_done = req_now(dev);
    if (lock)
        pthread_rwlock_unlock(&dev->vu.lock);
}

/*
 * May @req's pointers into guest memory be used on this thread? Not on the
 * side pool (no read lock while it runs), not after a memory table change.
 */
static bool fv_req_guest_mem_ok(const struct fv_req *req)
{
    return req->mode != FV_MODE_SIDE &&
           req->q->dev->vu.mem_generation == req->mem_gen;
}

/*
 * READ reply without a bounce buffer: preadv() from @fd straight into the
 * chain's writable buffers after the fuse_out_header, then the header, then
 * the push. Runs on the thread running the request, which holds the read
 * lock (inline or pool), so wr_iov cannot go stale under the read.
 */
ssize_t fv_reply_read_fd(int fd, size_t size, off_t off)
{
    struct fv_req *req = cur_req;
    const size_t hdr = sizeof(struct fuse_out_header);
    struct iovec iov[VQ_MAX_IOV];
    struct fuse_out_header oh;
    struct iovec ohv = { .iov_base = &oh, .iov_len = sizeof(oh) };
    unsigned int n;
    ssize_t r;

    /* side-pool requests run without the lock; anything odd: libfuse path */
    if (!req || req->replied || req->opcode != FUSE_READ ||
        !fv_req_guest_mem_ok(req) || req->wr_len < hdr + (uint64_t)size)
        return -EOPNOTSUPP;
    n = iov_slice(req->wr_iov, req->wr_num, hdr, size, iov, VQ_MAX_IOV);
    do {
        r = n ? preadv(fd, iov, (int)n, off) : 0;
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    oh.len = (uint32_t)(hdr + (size_t)r);
    oh.error = 0;
    oh.unique = req->unique;
    req->replied = true;
    req->error = 0;
    fv_req_publish(req, (uint32_t)iov_to_iov(req->wr_iov, req->wr_num, &ohv, 1) +
                            (uint32_t)r, false);
    return r;
}

ssize_t fv_write_data(int fd, const struct fuse_bufvec *src, off_t off)
{
    struct fv_req *req = cur_req;
    struct iovec iov[VQ_MAX_IOV];
    size_t size;
    unsigned int n;
    ssize_t r;

    if (!req || req->in_copied >= req->in_len)
        return -EOPNOTSUPP;     /* the data is in in_buf, @src has it */
    /* left in guest memory: only a WRITE, run under the read lock */
    if (req->opcode != FUSE_WRITE || !fv_req_guest_mem_ok(req)) {
        vfs_warn_ratelimited("queue %u: guest memory changed under %s "
                             "(unique %llu); data not written", req->q->idx,
                             fuse_opcode_name(req->opcode),
                             (unsigned long long)req->unique);
        return -EIO;
    }
    /* libfuse points write_buf at the data right after fuse_write_in */
    size = fuse_buf_size(src);
    if (src->count != 1 || src->idx || src->off ||
        (src->buf[0].flags & FUSE_BUF_IS_FD) ||
        src->buf[0].mem != (uint8_t *)req->in_buf + req->in_copied ||
        size > req->in_len - req->in_copied) {
        /* not what we left behind: copy it after all, write it as usual */
        req->in_copied += (uint32_t)iov_to_buf_at(
            req->rd_iov, req->rd_num, req->in_copied,
            (uint8_t *)req->in_buf + req->in_copied,
            req->in_len - req->in_copied);
        return -EOPNOTSUPP;
    }
    n = iov_slice(req->rd_iov, req->rd_num, req->in_copied, size, iov,
                  VQ_MAX_IOV);
    do {
        r = n ? pwritev(fd, iov, (int)n, off) : 0;
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}

/* Answer @req with @err (negative errno) without libfuse. */
static void fv_req_reply_error(struct fv_req *req, int err)
{
    struct fuse_out_header oh = {
        .len = sizeof(oh),
        .error = err,
        .unique = req->unique,
    };
    struct iovec iov = { .iov_base = &oh, .iov_len = sizeof(oh) };

    req->error = err;
    /* FORGETs get no reply; a chain without room for one comes back empty */
    if (fv_opcode_no_reply(req->opcode) || req->wr_len < sizeof(oh))
        fv_req_push(req, NULL, 0);
    else
        fv_req_push(req, &iov, 1);
}

/* libfuse's transport: called on the thread that runs the request. */
static ssize_t fv_io_writev(int fd, struct iovec *iov, int count,
                            void *userdata)
{
    struct fv_req *req = cur_req;
    size_t total;

    (void)fd;
    (void)userdata;
    if (count < 0) {
        errno = EINVAL;
        return -1;
    }
    total = iov_total(iov, (unsigned int)count);
    if (!req) {
        /* Notifications have no queue to travel on. */
        vfs_warn_ratelimited("dropping a %zu-byte message sent outside a "
                             "request", total);
        errno = ENOTSUP;
        return -1;
    }
    if (req->replied) {
        vfs_warn_ratelimited("second reply to %s (unique %llu) dropped",
                             fuse_opcode_name(req->opcode),
                             (unsigned long long)req->unique);
        return (ssize_t)total;
    }
    req->replied = true;
    fv_req_push(req, iov, (unsigned int)count);
    return (ssize_t)total;
}

static ssize_t fv_io_read(int fd, void *buf, size_t len, void *userdata)
{
    /* Requests come from the rings, never from the session fd. */
    (void)fd;
    (void)buf;
    (void)len;
    (void)userdata;
    errno = ENOSYS;
    return -1;
}

static const struct fuse_custom_io fv_io = {
    .writev = fv_io_writev,
    .read = fv_io_read,
};

/*
 * Every popped request ends here exactly once, after its chain was pushed.
 *
 * STATS/TRACE SEAM: per-request statistics and tracepoints (a later issue)
 * hook in here: q->idx, opcode, mode, in_len, out_len, error and the four
 * timestamps (t_pop, t_start, t_reply, t_done) are final at this point.
 * Requests answered by the transport itself (validation errors, no
 * session) have t_start set and t_reply == time of the error reply.
 */
static void fv_batch_flush(struct fv_queue *q);

static void fv_req_finish(struct fv_req *req)
{
    struct fv_queue *q = req->q;

    if (req->notify_deferred) {
        /* finished by fv_batch_flush(), after the notification */
        req->batch_next = NULL;
        *q->batch_tail = req;
        q->batch_tail = &req->batch_next;
        if (++q->batch_n >= FV_BATCH_MAX)
            fv_batch_flush(q);
        return;
    }
    trace_req_done(q->idx, req->unique, req->opcode,
                   req->t_start - req->t_pop, req->t_reply - req->t_start,
                   req->t_done - req->t_pop);
    if (q->dev->cfg.stats)
        stats_record_req(q->dev->stats, q->idx, req);
    free(req);
    pthread_mutex_lock(&q->lock);
    /* atomic: auto's policy reads it without the lock */
    __atomic_store_n(&q->inflight, q->inflight - 1, __ATOMIC_RELAXED);
    if (q->inflight == 0)
        pthread_cond_broadcast(&q->drained);
    pthread_mutex_unlock(&q->lock);
}

/*
 * Notify the guest once for every reply the queue thread pushed since the
 * last flush, then finish those requests. Queue thread, read lock held.
 */
static void fv_batch_flush(struct fv_queue *q)
{
    struct fv_dev *dev = q->dev;
    struct vq *vq = &dev->vu.vring[q->idx].vq;
    struct fv_req *req, *next;
    uint64_t t_done;
    bool sent;

    /* pool requests of the batch get their threads first */
    dispatch_flush(&dev->dispatch, q->idx);
    if (!q->batch_n)
        return;
    pthread_mutex_lock(&vq->push_lock);
    sent = vq_notify_batch_locked(vq, q->batch_n);
    pthread_mutex_unlock(&vq->push_lock);
    t_done = req_now(dev);
    req = q->batch_head;
    q->batch_head = NULL;
    q->batch_tail = &q->batch_head;
    q->batch_n = 0;
    for (; req; req = next) {
        next = req->batch_next;
        /* one notify probe per request, as unbatched: the last one sent */
        if (sent && !next)
            trace_notify_sent(q->idx, req->unique);
        else
            trace_notify_suppressed(q->idx, req->unique);
        req->t_done = t_done;
        req->notify_deferred = false;
        fv_req_finish(req);
    }
}

/* ---- sessions ---- */

/* Wraps the filesystem's init: runs inside INIT, in the exclusive section. */
static void fv_op_init(void *userdata, struct fuse_conn_info *conn)
{
    struct fv_req *req = cur_req;
    struct fv_dev *dev = req ? req->q->dev : NULL;

    if (dev && dev->fs_init)
        dev->fs_init(userdata, conn);
    /*
     * Replies are copied into guest memory by fv_io_writev; libfuse would
     * splice them into the dummy session fd instead, losing them.
     */
    conn->want &= ~(FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE |
                    FUSE_CAP_SPLICE_READ);
    if (dev) {
        dev->init_vflags = 0;
#ifdef FUSE_CAP_SETXATTR_EXT
        if (conn->want & FUSE_CAP_SETXATTR_EXT)
            dev->init_vflags |= FV_VALIDATE_SETXATTR_EXT;
#endif
    }
}

static struct fv_session *fv_session_new(struct fv_dev *dev)
{
    char arg0[] = "virtiofsd";
    char *argv[] = { arg0, NULL };
    struct fuse_args args = FUSE_ARGS_INIT(1, argv);
    struct fv_session *s;
    int fd, r;

    s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->se = fuse_session_new(&args, &dev->ops, sizeof(dev->ops),
                             dev->userdata);
    fuse_opt_free_args(&args);
    if (!s->se)
        goto fail;
    /* Never read or written (fuse_session_mount is never called); libfuse
     * just wants a valid fd, which fuse_session_destroy() closes. */
    fd = eventfd(0, EFD_CLOEXEC);
    if (fd < 0)
        goto fail_se;
    r = fuse_session_custom_io(s->se, &fv_io, fd);
    if (r < 0) {
        close(fd);
        goto fail_se;
    }
    s->refs = 1;
    return s;

fail_se:
    fuse_session_destroy(s->se);
fail:
    vfs_err("cannot create a FUSE session");
    free(s);
    return NULL;
}

static void fv_session_get(struct fv_session *s)
{
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}

static void fv_session_put(struct fv_session *s)
{
    if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    /* Calls the filesystem's destroy if it had INIT and no DESTROY. */
    fuse_session_destroy(s->se);
    free(s);
}

/* Only when no queue runs (reset, end of connection, free). */
static void fv_session_reset(struct fv_dev *dev, bool fresh)
{
    struct fv_session *old = dev->session;

    dev->session = NULL;
    fv_session_put(old);
    if (fresh)
        dev->session = fv_session_new(dev);
}

/*
 * 0 if @req may be handed to libfuse on @s, else the errno to answer.
 * Caller holds vu.lock (either mode).
 */
static int fv_session_admit(struct fv_req *req, const struct fv_session *s)
{
    const char *why = NULL;
    int r;

    /* Before INIT libfuse would answer EIO itself; after DESTROY the
     * filesystem has torn down its state. */
    if (!s || !s->got_init || s->got_destroy) {
        trace_req_rejected(req->q->idx, req->unique, req->opcode,
                           TRACE_REQ_NO_SESSION, -EIO);
        return -EIO;
    }
    if (s->vflags != req->vflags) {
        /* validated before the session's INIT changed the layouts */
        r = fv_validate_request_ex(req->in_buf, req->in_len, req->wr_len,
                                   s->vflags, &why);
        if (r) {
            vfs_warn_ratelimited("queue %u: rejecting %s (unique %llu): %s",
                                 req->q->idx, fuse_opcode_name(req->opcode),
                                 (unsigned long long)req->unique, why);
            trace_req_rejected(req->q->idx, req->unique, req->opcode,
                               TRACE_REQ_REVALIDATE, r);
            return r;
        }
        req->vflags = s->vflags;
    }
    return 0;
}

static void fv_req_process(struct fv_req *req, struct fv_session *s)
{
    struct fuse_buf fb = {
        .size = req->in_len,
        .mem = req->in_buf,
    };

    cur_req = req;
    fuse_session_process_buf(s->se, &fb);
    cur_req = NULL;
    /* FORGET, BATCH_FORGET, or a handler that called fuse_reply_none() */
    if (!req->replied)
        fv_req_push(req, NULL, 0);
}

/* ---- side pool: gate and interruption ---- */

static void fv_side_kill_locked(struct fv_dev *dev, const struct fv_queue *q)
{
    for (unsigned int i = 0; i < DISPATCH_SIDE_THREADS; i++) {
        struct fv_side_slot *sl = &dev->side_slots[i];

        if (sl->used && (!q || sl->q == q))
            pthread_kill(sl->thread, fv_interrupt_signal());
    }
}

static void fv_side_interrupt(struct fv_dev *dev, const struct fv_queue *q)
{
    pthread_mutex_lock(&dev->side_lock);
    fv_side_kill_locked(dev, q);
    pthread_mutex_unlock(&dev->side_lock);
}

static unsigned int fv_side_enter(struct fv_dev *dev, const struct fv_queue *q)
{
    unsigned int slot;

    pthread_mutex_lock(&dev->side_lock);
    for (;;) {
        if (!dev->side_gate_closed) {
            for (slot = 0; slot < DISPATCH_SIDE_THREADS; slot++) {
                if (!dev->side_slots[slot].used)
                    break;
            }
            if (slot < DISPATCH_SIDE_THREADS)
                break;
        }
        pthread_cond_wait(&dev->side_cond, &dev->side_lock);
    }
    dev->side_slots[slot].used = true;
    dev->side_slots[slot].thread = pthread_self();
    dev->side_slots[slot].q = q;
    dev->side_running++;
    pthread_mutex_unlock(&dev->side_lock);
    return slot;
}

static void fv_side_leave(struct fv_dev *dev, unsigned int slot)
{
    pthread_mutex_lock(&dev->side_lock);
    dev->side_slots[slot].used = false;
    dev->side_running--;
    pthread_cond_broadcast(&dev->side_cond);
    pthread_mutex_unlock(&dev->side_lock);
}

/*
 * Enter the exclusive section: no other INIT/DESTROY, no side-pool request
 * running (blocked lock waits are interrupted; new ones wait at the gate),
 * no inline or pool runner (they hold the read lock).
 */
static void fv_exclusive_begin(struct fv_dev *dev)
{
    unsigned int rounds = 0;

    pthread_mutex_lock(&dev->excl_lock);
    pthread_mutex_lock(&dev->side_lock);
    dev->side_gate_closed = true;
    while (dev->side_running) {
        struct timespec ts = deadline_after(FV_INTERRUPT_PERIOD_NS);

        if (++rounds % FV_INTERRUPT_WARN_ROUNDS == 0)
            vfs_warn("INIT/DESTROY still waiting for %u blocked lock "
                     "request(s)", dev->side_running);
        fv_side_kill_locked(dev, NULL);
        pthread_cond_timedwait(&dev->side_cond, &dev->side_lock, &ts);
    }
    pthread_mutex_unlock(&dev->side_lock);
    pthread_rwlock_wrlock(&dev->vu.lock);
}

static void fv_exclusive_end(struct fv_dev *dev)
{
    pthread_rwlock_unlock(&dev->vu.lock);
    pthread_mutex_lock(&dev->side_lock);
    dev->side_gate_closed = false;
    pthread_cond_broadcast(&dev->side_cond);
    pthread_mutex_unlock(&dev->side_lock);
    pthread_mutex_unlock(&dev->excl_lock);
}

/* ---- runners ---- */

/* INIT or DESTROY, on the queue thread, which holds the read lock. */
static void fv_run_exclusive(struct fv_req *req)
{
    struct fv_dev *dev = req->q->dev;
    struct fv_session *s;
    int err = 0;

    req->mode = FV_MODE_INLINE;
    /* the batch so far is notified before the ring can change under us */
    fv_batch_flush(req->q);
    pthread_rwlock_unlock(&dev->vu.lock);
    fv_exclusive_begin(dev);
    req->t_start = req_now(dev);
    trace_req_start(req->q->idx, req->unique, FV_MODE_INLINE,
                    trace_thread_id());
    s = dev->session;
    if (thread_state < 0) {
        err = -EIO;
    } else if (req->opcode == FUSE_INIT) {
        /* libfuse takes one INIT per session: remount or reboot => fresh */
        if (!s || s->got_init || s->got_destroy) {
            struct fv_session *old = s;

            s = fv_session_new(dev);
            dev->session = s;
            /*
             * Nothing else can hold the old session (side pool drained),
             * so its filesystem destroy runs now, before the new init.
             */
            fv_session_put(old);
            if (!s)
                err = -ENOMEM;
        }
        if (!err) {
            dev->init_vflags = 0;
            fv_req_process(req, s);
            /* even a failed INIT uses up the session */
            s->got_init = true;
            s->vflags = dev->init_vflags;
        }
    } else {
        /* DESTROY twice, or before INIT, would run destroy twice/early */
        if (!s || !s->got_init || s->got_destroy) {
            err = -EIO;
        } else {
            fv_req_process(req, s);
            s->got_destroy = true;
        }
    }
    if (err)
        fv_req_reply_error(req, err);
    fv_exclusive_end(dev);
    pthread_rwlock_rdlock(&dev->vu.lock);
    fv_req_finish(req);
}

/* Inline or pool: the read lock is held. */
static void fv_run_locked(struct fv_req *req)
{
    struct fv_session *s = req->q->dev->session;
    int err;

    req->t_start = req_now(req->q->dev);
    err = thread_state > 0 ? fv_session_admit(req, s) : -EIO;
    if (err) {
        fv_req_reply_error(req, err);
        return;
    }
    fv_req_process(req, s);
}

/* Blocking op on the side pool: no dev->lock while it runs. */
static void fv_run_side(struct fv_req *req)
{
    struct fv_dev *dev = req->q->dev;
    struct fv_session *s = NULL;
    unsigned int slot;
    int err;

    slot = fv_side_enter(dev, req->q);
    req->t_start = req_now(dev);
    pthread_rwlock_rdlock(&dev->vu.lock);
    err = thread_state > 0 ? fv_session_admit(req, dev->session) : -EIO;
    if (!err) {
        s = dev->session;
        fv_session_get(s);
    }
    pthread_rwlock_unlock(&dev->vu.lock);
    /* A stopping queue would otherwise wait for our first lock wait. */
    if (!err && __atomic_load_n(&req->q->stopping, __ATOMIC_ACQUIRE))
        err = -EINTR;
    if (err)
        fv_req_reply_error(req, err);
    else
        fv_req_process(req, s);
    fv_session_put(s);
    fv_side_leave(dev, slot);
}

/* dispatch_run_fn */
static void fv_run(struct fv_req *req, enum fv_mode mode)
{
    struct fv_dev *dev = req->q->dev;

    req->mode = (uint8_t)mode;
    fv_thread_init();
    trace_req_start(req->q->idx, req->unique, mode, trace_thread_id());
    switch (mode) {
    case FV_MODE_SIDE:
        fv_run_side(req);
        break;
    case FV_MODE_POOL:
        if (dev->cfg.stats)
            stats_pool_busy(dev->stats, req->q->idx, 1);
        pthread_rwlock_rdlock(&dev->vu.lock);
        fv_run_locked(req);
        pthread_rwlock_unlock(&dev->vu.lock);
        if (dev->cfg.stats)
            stats_pool_busy(dev->stats, req->q->idx, -1);
        break;
    default:
        if (req->auto_sample) {
            struct dispatch_auto_clock ck;

            dispatch_auto_begin(&dev->dispatch, req->q->idx, &ck);
            fv_run_locked(req);
            dispatch_auto_end(&dev->dispatch, req->q->idx, &ck);
        } else {
            fv_run_locked(req);
        }
        break;
    }
    fv_req_finish(req);
}

/* ---- queue threads ---- */

/*
 * One popped chain (q->elem), under the read lock. @sample: the queue is
 * in auto mode; an inline run's time feeds its average (fv_run).
 */
static void fv_handle_elem(struct fv_queue *q, enum fv_mode mode, bool sample)
{
    struct fv_dev *dev = q->dev;
    const struct vq_elem *elem = q->elem;
    uint64_t t_pop = req_now(dev);
    bool too_big = elem->rd_len > FV_MAX_IN_SIZE;
    size_t copy_len = elem->rd_len;
    const char *why = NULL;
    struct fv_req *req;
    int err;

    if (too_big)
        copy_len = sizeof(struct fuse_in_header); /* enough to answer */
    req = malloc(sizeof(*req) +
                 (elem->wr_num + elem->rd_num) * sizeof(struct iovec) + copy_len);
    if (!req) {
        vfs_warn_ratelimited("queue %u: out of memory; request dropped",
                             q->idx);
        trace_req_rejected(q->idx, 0, 0, TRACE_REQ_NO_MEMORY, -ENOMEM);
        vq_push_notify(&dev->vu.vring[q->idx].vq, elem->head, 0);
        return;
    }
    memset(req, 0, sizeof(*req));
    req->q = q;
    req->head = elem->head;
    req->t_pop = t_pop;
    req->mem_gen = dev->vu.mem_generation;
    req->vflags = dev->session ? dev->session->vflags : 0;
    req->wr_num = elem->wr_num;
    req->wr_len = elem->wr_len;
    memcpy(req->wr_iov, &elem->iov[elem->rd_num],
           elem->wr_num * sizeof(struct iovec));
    req->rd_iov = req->wr_iov + elem->wr_num;
    req->in_buf = req->rd_iov + elem->rd_num;
    /*
     * A private copy: the guest can rewrite its buffers at any time. What
     * is decided from the request (here: whether a WRITE's data may stay
     * in guest memory) is decided on the copy.
     */
    fv_tsan_guest_acquire(dev);
    req->in_copied = (uint32_t)iov_to_buf(elem->iov, elem->rd_num,
                                          req->in_buf,
                                          copy_len < FV_WRITE_HEAD ?
                                          copy_len : FV_WRITE_HEAD);
    if (req->in_copied >= sizeof(struct fuse_in_header)) {
        struct fuse_in_header in;

        memcpy(&in, req->in_buf, sizeof(in));
        req->opcode = in.opcode;
        req->unique = in.unique;
        req->nodeid = in.nodeid;
    }
    if (copy_len > FV_WRITE_HEAD && dev->cfg.write_in_place &&
        req->opcode == FUSE_WRITE) {
        memcpy(req->rd_iov, elem->iov, elem->rd_num * sizeof(struct iovec));
        req->rd_num = elem->rd_num;
        req->in_len = (uint32_t)copy_len;
    } else {
        if (copy_len > req->in_copied)
            req->in_copied += (uint32_t)iov_to_buf_at(
                elem->iov, elem->rd_num, req->in_copied,
                (uint8_t *)req->in_buf + req->in_copied,
                copy_len - req->in_copied);
        req->in_len = req->in_copied;
    }
    trace_req_popped(q->idx, req->head, req->unique, req->opcode, req->nodeid);
    trace_req_sizes(q->idx, req->unique, elem->rd_len, elem->wr_len);
    pthread_mutex_lock(&q->lock);
    __atomic_store_n(&q->inflight, q->inflight + 1, __ATOMIC_RELAXED);
    if (q->inflight > q->inflight_max)
        q->inflight_max = q->inflight;
    pthread_mutex_unlock(&q->lock);

    if (too_big) {
        err = -EINVAL;
        why = "request larger than the transport accepts";
    } else {
        err = fv_validate_request_ex(req->in_buf, req->in_len, req->wr_len,
                                     req->vflags, &why);
    }
    if (err) {
        vfs_warn_ratelimited("queue %u: rejecting %s (unique %llu, %llu "
                             "bytes): %s", q->idx,
                             fuse_opcode_name(req->opcode),
                             (unsigned long long)req->unique,
                             (unsigned long long)elem->rd_len, why);
        trace_req_rejected(q->idx, req->unique, req->opcode,
                           too_big ? TRACE_REQ_TOO_BIG : TRACE_REQ_INVALID,
                           err);
        req->mode = FV_MODE_INLINE;
        req->t_start = req_now(dev);
        fv_req_reply_error(req, err);
        fv_req_finish(req);
        return;
    }

    switch (req->opcode) {
    case FUSE_INIT:
    case FUSE_DESTROY:
        fv_run_exclusive(req);
        return;
    case FUSE_SETLKW:
        /* may wait for another guest request: never on a ring's thread */
        mode = FV_MODE_SIDE;
        break;
    default:
        break;
    }
    req->auto_sample = sample && mode == FV_MODE_INLINE;
    dispatch_submit(&dev->dispatch, q->idx, mode, req);
}

/*
 * Pop and dispatch until the ring is empty; read lock held. Returns the
 * number of chains popped (saturated; for stats), -EIO if the ring broke.
 */
static int fv_queue_process(struct fv_queue *q)
{
    struct fv_dev *dev = q->dev;
    struct vq *vq = &dev->vu.vring[q->idx].vq;
    int r, popped = 0;

    for (;;) {
        /* the mode is read once per batch so a live switch is clean */
        enum fv_mode policy = dispatch_batch_mode(&dev->dispatch, q->idx);
        bool is_auto = policy == FV_MODE_AUTO;
        enum fv_mode mode = is_auto ? FV_MODE_INLINE : policy;
        enum fv_mode last = FV_MODE_INLINE;

        vq_disable_notify(vq);
        batch_q = q;
        for (;;) {
            unsigned int waiting = is_auto ? vq_avail_count(vq) : 0;

            if (waiting) {
                /* auto: where this one runs, from the queue's depth now:
                 * waiting in the ring plus still running */
                mode = dispatch_auto_choose(
                    &dev->dispatch, q->idx,
                    waiting + __atomic_load_n(&q->inflight, __ATOMIC_RELAXED));
                /* the pool's requests (and replies so far) must not
                 * wait behind an inline run */
                if (mode == FV_MODE_INLINE && last == FV_MODE_POOL)
                    fv_batch_flush(q);
                last = mode;
            }
            r = vq_pop(vq, &dev->vu.mem, q->elem);
            if (r <= 0)
                break;
            fv_handle_elem(q, mode, is_auto);
            if (popped < INT_MAX)
                popped++;
        }
        /* ring empty (or broken): the guest hears about the batch now */
        fv_batch_flush(q);
        batch_q = NULL;
        if (r < 0)
            return r;
        vq_enable_notify(vq);
        /* a buffer added before notifications were back would be lost */
        if (!vq_has_work(vq))
            return popped;
    }
}

static void *fv_queue_thread(void *opaque)
{
    struct fv_queue *q = opaque;
    struct fv_dev *dev = q->dev;
    bool broken = false, kicked = true;
    uint64_t kick_signals = 0;  /* guest kicks behind this wakeup */
    char name[16];

    snprintf(name, sizeof(name), "vfs-vq%u", q->idx);
    pthread_setname_np(pthread_self(), name);
    fv_thread_init();
    for (;;) {
        struct pollfd pfd[2] = {
            { .fd = q->stop_fd, .events = POLLIN },
            { .fd = q->kick_fd, .events = POLLIN },
        };
        int r;

        /* first pass without a kick: the ring may be non-empty already */
        if (kicked && !broken) {
            pthread_rwlock_rdlock(&dev->vu.lock);
            r = fv_queue_process(q);
            pthread_rwlock_unlock(&dev->vu.lock);
            if (r < 0) {
                vfs_err("queue %u: ring broken; no longer processed", q->idx);
                trace_queue_broken(q->idx, TRACE_QUEUE_RING);
                broken = true;
            } else if (kick_signals && dev->cfg.stats) {
                stats_record_kick(dev->stats, q->idx, kick_signals,
                                  (unsigned int)r);
            }
        }
        kicked = false;
        kick_signals = 0;
        /* a broken queue only waits for its stop */
        r = poll(pfd, broken ? 1 : 2, -1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            vfs_err("queue %u: poll: %s", q->idx, strerror(errno));
            trace_queue_broken(q->idx, TRACE_QUEUE_POLL);
            broken = true;
            continue;
        }
        if (pfd[0].revents)
            break;
        if (broken || !pfd[1].revents)
            continue;
        if (pfd[1].revents & POLLIN) {
            uint64_t v;
            ssize_t n = read(q->kick_fd, &v, sizeof(v));

            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                vfs_err("queue %u: kick fd unreadable", q->idx);
                trace_queue_broken(q->idx, TRACE_QUEUE_KICK_READ);
                broken = true;
                continue;
            }
            if (n == (ssize_t)sizeof(v))
                kick_signals = v;
            kicked = true;
            trace_queue_kick(q->idx, n == (ssize_t)sizeof(v) ? v : 0);
        } else {
            vfs_err("queue %u: kick fd error (revents 0x%x)", q->idx,
                    pfd[1].revents);
            trace_queue_broken(q->idx, TRACE_QUEUE_KICK_ERROR);
            broken = true;
        }
    }
    return NULL;
}

/* ---- stats (STATS.md); control side, any thread ---- */

void fv_config_default(struct fv_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_request_queues = 1;
    cfg->stats = true;
}

char *fv_dev_stats_json(struct fv_dev *dev)
{
    struct stats_queue_live live[VU_MAX_QUEUES];
    struct stats_live l = {
        .enabled = dev->cfg.stats,
        .nqueues = dev->nqueues,
        .q = live,
    };

    memset(live, 0, sizeof(live));
    for (unsigned int i = 0; i < dev->nqueues; i++) {
        struct fv_queue *q = &dev->queues[i];

        dispatch_get_mode(&dev->dispatch, i, &live[i].mode,
                          &live[i].pool_size);
        live[i].pool_sched = dispatch_get_pool_sched(&dev->dispatch, i);
        pthread_mutex_lock(&q->lock);
        live[i].inflight = q->inflight;
        live[i].inflight_max = q->inflight_max;
        pthread_mutex_unlock(&q->lock);
        dispatch_pool_counts(&dev->dispatch, i, &live[i].pool_threads,
                             &live[i].pool_queued);
    }
    if (dev->dispatch.side) {
        l.side_threads = g_thread_pool_get_num_threads(dev->dispatch.side);
        l.side_queued = g_thread_pool_unprocessed(dev->dispatch.side);
    }
    return stats_json(dev->stats, &l);
}

void fv_dev_stats_reset(struct fv_dev *dev)
{
    stats_reset(dev->stats);
    for (unsigned int i = 0; i < dev->nqueues; i++) {
        struct fv_queue *q = &dev->queues[i];

        pthread_mutex_lock(&q->lock);
        q->inflight_max = q->inflight;
        pthread_mutex_unlock(&q->lock);
    }
}

void fv_dev_stats_mode_switch(struct fv_dev *dev, unsigned int qidx)
{
    if (dev->cfg.stats)
        stats_mode_switch(dev->stats, qidx);
}

/* ---- vu_dev_iface ---- */

static int fv_queue_start(struct vu_dev *vu, unsigned int qidx)
{
    struct fv_dev *dev = vu->opaque;
    struct fv_queue *q;
    int r;

    if (qidx >= dev->nqueues)
        return -EINVAL;
    q = &dev->queues[qidx];
    if (q->running)
        return 0;
    if (vu->vring[qidx].kick_fd < 0)
        return -EINVAL;
    q->kick_fd = vu->vring[qidx].kick_fd;
    q->elem = malloc(sizeof(*q->elem));
    if (!q->elem)
        return -ENOMEM;
    q->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (q->stop_fd < 0) {
        r = -errno;
        goto fail_elem;
    }
    r = dispatch_queue_start(&dev->dispatch, qidx);
    if (r < 0)
        goto fail_fd;
    __atomic_store_n(&q->stopping, false, __ATOMIC_RELAXED);
    /* vu_dev_init() gave the ring fresh state: count into the device's */
    if (dev->cfg.stats)
        vq_set_counters(&vu->vring[qidx].vq,
                        stats_vq_counters(dev->stats, qidx));
    r = -pthread_create(&q->thread, NULL, fv_queue_thread, q);
    if (r < 0) {
        vfs_err("queue %u: pthread_create: %s", qidx, strerror(-r));
        goto fail_pool;
    }
    q->running = true;
    trace_queue_start(qidx);
    vfs_debug("queue %u started", qidx);
    return 0;

fail_pool:
    dispatch_queue_stop(&dev->dispatch, qidx);
fail_fd:
    close(q->stop_fd);
    q->stop_fd = -1;
fail_elem:
    free(q->elem);
    q->elem = NULL;
    return r;
}

/* Wait until every request popped from @q was pushed and finished. */
static void fv_queue_drain(struct fv_queue *q)
{
    unsigned int rounds = 0;

    pthread_mutex_lock(&q->lock);
    while (q->inflight) {
        struct timespec ts = deadline_after(FV_INTERRUPT_PERIOD_NS);

        /* A handler that retries its lock wait on EINTR would hold us. */
        if (++rounds % FV_INTERRUPT_WARN_ROUNDS == 0)
            vfs_warn("queue %u: stop still waiting for %u request(s)",
                     q->idx, q->inflight);
        pthread_mutex_unlock(&q->lock);
        /* repeatedly: a signal sent just before a wait begins is lost */
        fv_side_interrupt(q->dev, q);
        pthread_mutex_lock(&q->lock);
        if (q->inflight)
            pthread_cond_timedwait(&q->drained, &q->lock, &ts);
    }
    pthread_mutex_unlock(&q->lock);
}

static void fv_queue_stop(struct vu_dev *vu, unsigned int qidx)
{
    struct fv_dev *dev = vu->opaque;
    struct fv_queue *q;

    if (qidx >= dev->nqueues)
        return;
    q = &dev->queues[qidx];
    if (!q->running)
        return;
    __atomic_store_n(&q->stopping, true, __ATOMIC_RELEASE);
    if (eventfd_write(q->stop_fd, 1) < 0)
        vfs_err("queue %u: stop: %s", qidx, strerror(errno));
    pthread_join(q->thread, NULL);
    fv_queue_drain(q);
    dispatch_queue_stop(&dev->dispatch, qidx);
    close(q->stop_fd);
    q->stop_fd = -1;
    q->kick_fd = -1;
    free(q->elem);
    q->elem = NULL;
    q->running = false;
    trace_queue_stop(qidx);
    vfs_debug("queue %u stopped", qidx);
}

static void fv_reset(struct vu_dev *vu)
{
    struct fv_dev *dev = vu->opaque;

    /* the guest rebooted or the driver reset: its filesystem state goes */
    fv_session_reset(dev, true);
}

static const struct vu_dev_iface fv_iface = {
    .queue_start = fv_queue_start,
    .queue_stop = fv_queue_stop,
    .reset = fv_reset,
};

/* ---- device ---- */

struct fv_dev *fv_dev_new(const struct fv_config *cfg,
                          const struct fuse_lowlevel_ops *ops, size_t ops_size,
                          void *userdata)
{
    struct fv_dev *dev;
    unsigned int nreq;

    if (!cfg || !ops) {
        errno = EINVAL;
        return NULL;
    }
    nreq = cfg->max_request_queues ? cfg->max_request_queues : 1;
    if (nreq > VU_MAX_QUEUES - 1 ||
        cfg->thread_pool_size > DISPATCH_MAX_POOL_SIZE ||
        (unsigned int)cfg->pool_sched >= FV_POOL_SCHED_COUNT ||
        (cfg->auto_slow_us && !fv_auto_slow_ok(cfg->auto_slow_us))) {
        errno = EINVAL;
        return NULL;
    }
    dev = calloc(1, sizeof(*dev));
    if (!dev)
        return NULL;
    dev->cfg = *cfg;
    dev->nqueues = 1 + nreq;
    memcpy(&dev->ops, ops,
           ops_size < sizeof(dev->ops) ? ops_size : sizeof(dev->ops));
    dev->fs_init = dev->ops.init;
    dev->ops.init = fv_op_init;
    dev->userdata = userdata;

    pthread_once(&signal_once, fv_install_signal);
    fuse_set_log_func(fv_fuse_log);

    if (dispatch_init(&dev->dispatch, dev->nqueues,
                      cfg->queue_mode_set ? cfg->queue_mode :
                      cfg->thread_pool_size ? FV_MODE_POOL : FV_MODE_INLINE,
                      cfg->thread_pool_size, cfg->pool_sched, fv_run) < 0) {
        free(dev);
        errno = ENOMEM;
        return NULL;
    }
    for (unsigned int i = 0; cfg->auto_slow_us && i < dev->nqueues; i++)
        dispatch_set_auto_slow(&dev->dispatch, i, cfg->auto_slow_us);
    pthread_mutex_init(&dev->excl_lock, NULL);
    pthread_mutex_init(&dev->side_lock, NULL);
    cond_init_monotonic(&dev->side_cond);
    for (unsigned int i = 0; i < VU_MAX_QUEUES; i++) {
        struct fv_queue *q = &dev->queues[i];

        q->dev = dev;
        q->idx = i;
        q->kick_fd = -1;
        q->stop_fd = -1;
        q->batch_tail = &q->batch_head;
        pthread_mutex_init(&q->lock, NULL);
        cond_init_monotonic(&q->drained);
    }
    dev->session = fv_session_new(dev);
    dev->stats = stats_new(dev->nqueues);
    if (!dev->session || !dev->stats) {
        fv_dev_free(dev);
        errno = ENOMEM;
        return NULL;
    }
    return dev;
}

int fv_dev_connect(struct fv_dev *dev, int sock)
{
    int r;

    r = vu_dev_init(&dev->vu, sock, dev->nqueues, &fv_iface, dev);
    if (r < 0) {
        close(sock);
        return r;
    }
    if (!dev->session)
        dev->session = fv_session_new(dev);
    return 0;
}

int fv_dev_process_msg(struct fv_dev *dev)
{
    return vu_dev_dispatch(&dev->vu);
}

int fv_dev_disconnect(struct fv_dev *dev, int result)
{
    /* stops every started queue (fv_queue_stop) */
    vu_dev_destroy(&dev->vu);
    /* the frontend is gone and with it the guest's view of the fs */
    fv_session_reset(dev, true);
    if (result == -ECONNRESET || result == 0)
        return 0;
    vfs_err("vhost-user connection: %s", strerror(-result));
    return result;
}

int fv_dev_vhost_fd(struct fv_dev *dev)
{
    /* vu is zeroed until the first vu_dev_init(): fd 0 is not ours */
    return dev->vu.iface ? dev->vu.sock : -1;
}

int fv_dev_serve(struct fv_dev *dev, int sock)
{
    int r;

    r = fv_dev_connect(dev, sock);
    if (r < 0)
        return r;
    do {
        r = fv_dev_process_msg(dev);
    } while (r == 0);
    return fv_dev_disconnect(dev, r);
}

void fv_dev_free(struct fv_dev *dev)
{
    if (!dev)
        return;
    fv_session_reset(dev, false);
    dispatch_destroy(&dev->dispatch);
    for (unsigned int i = 0; i < VU_MAX_QUEUES; i++) {
        pthread_mutex_destroy(&dev->queues[i].lock);
        pthread_cond_destroy(&dev->queues[i].drained);
    }
    pthread_cond_destroy(&dev->side_cond);
    pthread_mutex_destroy(&dev->side_lock);
    pthread_mutex_destroy(&dev->excl_lock);
    stats_free(dev->stats);
    free(dev);
}
