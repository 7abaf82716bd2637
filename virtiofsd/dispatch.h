/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Execution modes: where a popped request runs (DESIGN.md "Modes").
 *
 *   inline  on the queue thread that popped it
 *   pool    on the queue's pool of worker threads (struct dispatch_pool;
 *           upstream uses a GThreadPool, whose hand-off costs two more
 *           context switches per request on a shared CPU)
 *   side    blocking ops (SETLKW) on one small pool per device, whatever
 *           the queue's mode, so a lock wait never stalls a ring
 *   auto    a policy, not a place: before each pop the queue thread runs
 *           the request inline, unless the queue is at least two deep
 *           (waiting in the ring plus still running) and its inline
 *           requests have been slow (an average of the queue's threshold
 *           or more; DISPATCH_AUTO_SLOW_NS unless --auto-slow-us or the
 *           control socket's "auto slow" set another): then the pool
 *           runs it, so
 *           requests that block (a disk) overlap, while fast ones (page
 *           cache, tmpfs) never pay the hand-off. "Slow" is wall time when
 *           the daemon may run on several CPUs (long CPU-bound requests
 *           overlap too), but off-CPU time (wall minus the thread's CPU
 *           time) when it may run on one: there only blocking overlaps.
 *           The average is of inline runs only (a pool request's time
 *           includes its waits for a CPU), one in DISPATCH_AUTO_SAMPLE_EVERY
 *           (every one while the average is slow); while the policy picks
 *           the pool, every DISPATCH_AUTO_PROBE_EVERY'th request runs
 *           inline to keep it current.
 *
 * The mode is an atomic per-queue value, read once per popped batch by the
 * queue thread, so it can be flipped live (control socket, a later issue).
 * A queue's pool is open from queue start to queue stop whatever the mode,
 * and is resized in place, so switching to pool never sets it up on the
 * hot path.
 *
 * Locking is the runner's business (fuse_virtio.c): dispatch only decides
 * the thread. Used-ring pushes are serialized per queue by vq_push_notify().
 */
#ifndef VFS_DISPATCH_H
#define VFS_DISPATCH_H

#include <pthread.h>
#include <stdint.h>

#include <glib.h>

#include "auto_slow.h"
#include "fuse_virtio.h"
#include "vhost_user.h"

/* Pool requests a queue thread queues before it wakes workers anyway. */
#define DISPATCH_POOL_WAKE_CHUNK 16
/* Seconds an idle pool thread waits for work before it exits. */
#define DISPATCH_POOL_IDLE_S 10
/* Threads of the per-device side pool (blocking ops). */
#define DISPATCH_SIDE_THREADS 16
/* Upper bound accepted for a queue's pool size. */
#define DISPATCH_MAX_POOL_SIZE 1024
/*
 * auto: default inline run time (ns, moving average) from which waiting
 * requests go to the pool (auto_slow.h; a queue's own: "auto slow").
 */
#define DISPATCH_AUTO_SLOW_NS (FV_AUTO_SLOW_DEFAULT_US * 1000u)
/* auto: queue depth (the one about to be popped, others waiting in the
 * ring, others still running) from which the pool may run it */
#define DISPATCH_AUTO_MIN_DEPTH 2u
/* auto: one pool choice in this many runs inline instead (a fresh sample) */
#define DISPATCH_AUTO_PROBE_EVERY 64u
/* auto: inline runs of a fast queue measured (1 in N: on one CPU a
 * measurement is two syscalls, CLOCK_THREAD_CPUTIME_ID has no vDSO) */
#define DISPATCH_AUTO_SAMPLE_EVERY 16u
/* auto: weight of a new sample in the average, as a shift (1/8); a sample
 * counts for at most max(4 x the average, 2 x the threshold) */
#define DISPATCH_AUTO_EWMA_SHIFT 3

/* Runs @req in @mode on the calling thread (inline: the queue thread). */
typedef void (*dispatch_run_fn)(struct fv_req *req, enum fv_mode mode);

struct dispatch;

/*
 * A queue's pool: a FIFO of requests and up to max worker threads, made on
 * demand and gone after DISPATCH_POOL_IDLE_S idle seconds. The hand-off
 * wakes an idle worker after the lock is released, so the worker does not
 * run into the lock the submitter still holds (GLib's GThreadPool signals
 * under its lock: on a shared CPU the woken worker preempts the queue
 * thread, blocks on that lock and switches back; STATS.md "Pool hand-off").
 */
struct dispatch_pool {
    pthread_mutex_t mu;
    pthread_cond_t work;        /* idle workers wait here */
    pthread_cond_t gone;        /* stop waits here for threads == 0 */
    struct fv_req *head, *tail; /* queued requests, via fv_req.pool_next */
    unsigned int queued;
    unsigned int threads;       /* alive (running, idle or starting) */
    unsigned int idle;          /* waiting on work */
    unsigned int signaled;      /* wake-ups sent, not yet taken */
    unsigned int looking;       /* threads past their reply, not back yet;
                                 * atomic: raised without mu, lowered
                                 * under it */
    unsigned int claimed;       /* requests left for those (<= looking) */
    unsigned int deferred;      /* queued, runner not chosen yet (flush) */
    unsigned int max;           /* max(pool_size, 1) */
    bool running;               /* between dispatch_queue_start/stop */
};

/* auto's state; the queue thread writes, control readers load (atomics) */
struct dispatch_auto {
    uint64_t inline_ns;         /* moving average of inline run times */
    uint64_t chose_inline;      /* requests the policy ran inline */
    uint64_t chose_pool;        /* ... and gave to the pool */
    uint64_t slow_ns;           /* threshold; atomic (set live) */
    unsigned int since_probe;   /* pool choices since the last probe */
    unsigned int tick;          /* inline runs, for 1-in-N sampling */
};

/* One inline run's measurement (dispatch_auto_begin/end), on its stack. */
struct dispatch_auto_clock {
    uint64_t wall, cpu;         /* ns at the start */
    bool on;                    /* this run is a sample */
};

struct dispatch_queue {
    struct dispatch *d;
    unsigned int idx;
    int mode;                   /* enum fv_mode (or FV_MODE_AUTO), atomic */
    unsigned int pool_size;     /* atomic; the pool runs max(pool_size, 1) */
    int pool_sched;             /* enum fv_pool_sched, atomic */
    pthread_mutex_t lock;       /* orders set_mode callers */
    struct dispatch_pool pool;
    struct dispatch_auto autop;
};

struct dispatch {
    dispatch_run_fn run;
    unsigned int nqueues;
    unsigned int cpus;          /* CPUs we may run on (affinity at init) */
    GThreadPool *side;
    unsigned long side_handoff; /* as dispatch_queue.handoff */
    struct dispatch_queue q[VU_MAX_QUEUES];
};

/*
 * Every queue starts in @mode (inline, pool or auto; --queue-mode, which
 * defaults to pool when --thread-pool-size > 0, inline otherwise) with a
 * pool of @pool_size threads, its pool threads running under @pool_sched
 * (--pool-sched). Creates the side pool. Returns 0 or -errno.
 */
int dispatch_init(struct dispatch *d, unsigned int nqueues, enum fv_mode mode,
                  unsigned int pool_size, enum fv_pool_sched pool_sched,
                  dispatch_run_fn run);
/* Every queue must be stopped. */
void dispatch_destroy(struct dispatch *d);

/* Open the queue's pool (queue start; threads come on demand). 0. */
int dispatch_queue_start(struct dispatch *d, unsigned int qidx);
/*
 * Close the queue's pool and wait for its threads to exit; nothing of the
 * queue may be queued or running.
 */
void dispatch_queue_stop(struct dispatch *d, unsigned int qidx);
/*
 * The queue thread's batch ends (or must be seen whole, before an
 * exclusive request): wake or start the pool threads its pool requests
 * need. Queue thread only; cheap when nothing is pending.
 */
void dispatch_flush(struct dispatch *d, unsigned int qidx);
/*
 * Called by the runner on a pool thread right before it notifies the
 * guest of its reply: the thread will look at the FIFO again within
 * microseconds, so a request queued meanwhile is left to it instead of
 * waking another thread (the notification often lets the guest's next
 * request in before the finishing thread is back). No-op elsewhere.
 */
void dispatch_pool_finishing(void);
/* Threads of the queue's pool now, and requests waiting for one. */
void dispatch_pool_counts(struct dispatch *d, unsigned int qidx,
                          unsigned int *threads, unsigned int *queued);

/* The queue's mode for the batch about to be popped (one atomic load):
 * inline, pool, or FV_MODE_AUTO (then ask dispatch_auto_choose per pop). */
enum fv_mode dispatch_batch_mode(struct dispatch *d, unsigned int qidx);

/*
 * auto's rule on its own (pure, for tests): where the next request runs
 * when the queue is @depth deep (counting it), inline runs average
 * @inline_ns against a threshold of @slow_ns, and @probe_due says a pool
 * choice should be a probe instead.
 */
enum fv_mode dispatch_auto_rule(unsigned int depth, uint64_t inline_ns,
                                uint64_t slow_ns, bool probe_due);
/*
 * auto, queue thread of @qidx only: where the request about to be popped
 * runs, the queue being @depth deep. Counts the choice.
 */
enum fv_mode dispatch_auto_choose(struct dispatch *d, unsigned int qidx,
                                  unsigned int depth);
/* auto, queue thread only: an inline request of @qidx ran @ns (the
 * measure: wall or off-CPU time, see above). */
void dispatch_auto_sample(struct dispatch *d, unsigned int qidx, uint64_t ns);
/* auto, queue thread only, around one inline run of @qidx: decide whether
 * it is a sample and, at the end, feed dispatch_auto_sample(). */
void dispatch_auto_begin(struct dispatch *d, unsigned int qidx,
                         struct dispatch_auto_clock *c);
void dispatch_auto_end(struct dispatch *d, unsigned int qidx,
                       const struct dispatch_auto_clock *c);
/* auto's numbers for a reader (any thread; zeros for a bad index). */
void dispatch_auto_get(struct dispatch *d, unsigned int qidx,
                       uint64_t *inline_ns, uint64_t *chose_inline,
                       uint64_t *chose_pool);
/*
 * Live: auto's threshold for the queue, in microseconds
 * (FV_AUTO_SLOW_MIN_US..FV_AUTO_SLOW_MAX_US), from its next
 * pop; the average is kept. Thread-safe. 0 or -EINVAL.
 */
int dispatch_set_auto_slow(struct dispatch *d, unsigned int qidx,
                           unsigned int us);
/* The queue's threshold in ns (the default for a bad index). */
uint64_t dispatch_get_auto_slow(struct dispatch *d, unsigned int qidx);

/*
 * Run @req in @mode: inline calls d->run on this thread; pool and side
 * queue it. Only the queue thread of @qidx calls this.
 */
void dispatch_submit(struct dispatch *d, unsigned int qidx, enum fv_mode mode,
                     struct fv_req *req);

/*
 * Live switch: @mode FV_MODE_INLINE, FV_MODE_POOL or FV_MODE_AUTO;
 * @pool_size (<= DISPATCH_MAX_POOL_SIZE) resizes the queue's pool now if
 * it is running. Thread-safe. 0 or -EINVAL.
 */
int dispatch_set_mode(struct dispatch *d, unsigned int qidx, enum fv_mode mode,
                      unsigned int pool_size);
int dispatch_get_mode(struct dispatch *d, unsigned int qidx,
                      enum fv_mode *mode, unsigned int *pool_size);
/* Threads the queue's pool may run now: max(pool_size, 1). */
unsigned int dispatch_pool_threads(unsigned int pool_size);

/*
 * Live: the policy the queue's pool threads take before its next request
 * (each thread checks at the start of every request it runs; the change is
 * one sched_setattr when the policy differs). Thread-safe. 0 or -EINVAL.
 */
int dispatch_set_pool_sched(struct dispatch *d, unsigned int qidx,
                            enum fv_pool_sched sched);
enum fv_pool_sched dispatch_get_pool_sched(struct dispatch *d,
                                           unsigned int qidx);

const char *dispatch_mode_name(enum fv_mode mode);

#endif
