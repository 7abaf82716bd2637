/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Execution modes (see dispatch.h). Hot path: dispatch_batch_mode() and
 * dispatch_submit(); everything else is setup or control.
 */
#include "dispatch.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "trace_events.h"

static const char *const mode_names[FV_MODE_COUNT] = {
    [FV_MODE_INLINE] = "inline",
    [FV_MODE_POOL] = "pool",
    [FV_MODE_SIDE] = "side",
};

const char *dispatch_mode_name(enum fv_mode mode)
{
    if ((unsigned int)mode >= FV_MODE_COUNT)
        return "unknown";
    return mode_names[mode];
}

/*
 * The policy this thread runs under, as last set here; -1 before the
 * first request. GLib lends non-exclusive pool threads to every pool, so
 * a thread may serve queues with different policies: it switches on the
 * first request of the other kind (one syscall), not on every request.
 */
static __thread int pool_thread_sched = -1;

/* Linux's struct sched_attr (sched_setattr(2)); glibc 2.36 has no wrapper. */
struct pool_sched_attr {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime, sched_deadline, sched_period;
};

static void pool_thread_take_sched(int want, const char *who)
{
    struct pool_sched_attr attr = { .size = sizeof(attr) };

    if (want == pool_thread_sched)
        return;
    /*
     * Why batch: on a shared CPU a woken SCHED_OTHER worker preempts the
     * queue thread inside g_thread_pool_push (it still holds the pool's
     * lock), blocks on that lock and switches back: two extra context
     * switches per hand-off (STATS.md, "Pool threads' policy"). Nice
     * stays 0: no privilege is needed either way.
     */
    attr.sched_policy = want == FV_POOL_SCHED_BATCH ? SCHED_BATCH : SCHED_OTHER;
    if (syscall(SYS_sched_setattr, 0, &attr, 0) < 0)
        vfs_warn_ratelimited("%s thread policy %s: %s", who,
                             fv_pool_sched_name(
                                 (enum fv_pool_sched)want),
                             strerror(errno));
    /* on failure too: do not retry on every request */
    pool_thread_sched = want;
}

static void pool_worker(gpointer data, gpointer user_data)
{
    struct dispatch_queue *dq = user_data;

    (void)__atomic_load_n(&dq->handoff, __ATOMIC_ACQUIRE);
    pool_thread_take_sched(__atomic_load_n(&dq->pool_sched, __ATOMIC_RELAXED),
                           "pool");
    dq->d->run(data, FV_MODE_POOL);
}

static void side_worker(gpointer data, gpointer user_data)
{
    struct dispatch *d = user_data;

    (void)__atomic_load_n(&d->side_handoff, __ATOMIC_ACQUIRE);
    /* side threads keep the default policy: a granted lock runs promptly */
    pool_thread_take_sched(FV_POOL_SCHED_NORMAL, "side pool");
    d->run(data, FV_MODE_SIDE);
}

unsigned int dispatch_pool_threads(unsigned int pool_size)
{
    return pool_size ? pool_size : 1;
}

int dispatch_init(struct dispatch *d, unsigned int nqueues,
                  unsigned int pool_size, enum fv_pool_sched pool_sched,
                  dispatch_run_fn run)
{
    GError *err = NULL;

    if (!run || nqueues == 0 || nqueues > VU_MAX_QUEUES ||
        pool_size > DISPATCH_MAX_POOL_SIZE ||
        (unsigned int)pool_sched >= FV_POOL_SCHED_COUNT)
        return -EINVAL;
    memset(d, 0, sizeof(*d));
    d->run = run;
    d->nqueues = nqueues;
    for (unsigned int i = 0; i < nqueues; i++) {
        struct dispatch_queue *dq = &d->q[i];

        dq->d = d;
        dq->idx = i;
        dq->mode = pool_size ? FV_MODE_POOL : FV_MODE_INLINE;
        dq->pool_size = pool_size;
        dq->pool_sched = (int)pool_sched;
        pthread_mutex_init(&dq->lock, NULL);
    }
    /*
     * Non-exclusive: threads are borrowed from GLib's shared set and only
     * exist while lock waits do.
     */
    d->side = g_thread_pool_new(side_worker, d, DISPATCH_SIDE_THREADS, FALSE,
                                &err);
    if (!d->side) {
        vfs_err("side pool: %s", err ? err->message : "failed");
        g_clear_error(&err);
        for (unsigned int i = 0; i < nqueues; i++)
            pthread_mutex_destroy(&d->q[i].lock);
        return -ENOMEM;
    }
    return 0;
}

void dispatch_destroy(struct dispatch *d)
{
    if (!d->run)
        return;
    for (unsigned int i = 0; i < d->nqueues; i++) {
        dispatch_queue_stop(d, i);
        pthread_mutex_destroy(&d->q[i].lock);
    }
    if (d->side)
        g_thread_pool_free(d->side, FALSE, TRUE);
    d->side = NULL;
    d->run = NULL;
}

int dispatch_queue_start(struct dispatch *d, unsigned int qidx)
{
    struct dispatch_queue *dq;
    GThreadPool *pool;
    GError *err = NULL;

    if (qidx >= d->nqueues)
        return -EINVAL;
    dq = &d->q[qidx];
    pthread_mutex_lock(&dq->lock);
    if (dq->pool) {
        pthread_mutex_unlock(&dq->lock);
        return 0;
    }
    /* Shared-thread semantics like upstream's g_thread_pool_new(.., FALSE). */
    pool = g_thread_pool_new(pool_worker, dq,
                             dispatch_pool_threads(__atomic_load_n(
                                 &dq->pool_size, __ATOMIC_RELAXED)),
                             FALSE, &err);
    if (!pool) {
        vfs_err("queue %u: thread pool: %s", qidx,
                err ? err->message : "failed");
        g_clear_error(&err);
        pthread_mutex_unlock(&dq->lock);
        return -ENOMEM;
    }
    dq->pool = pool;
    pthread_mutex_unlock(&dq->lock);
    return 0;
}

void dispatch_queue_stop(struct dispatch *d, unsigned int qidx)
{
    struct dispatch_queue *dq;
    GThreadPool *pool;

    if (qidx >= d->nqueues)
        return;
    dq = &d->q[qidx];
    pthread_mutex_lock(&dq->lock);
    pool = dq->pool;
    dq->pool = NULL;
    pthread_mutex_unlock(&dq->lock);
    /* Nothing is queued by now; wait for workers still returning. */
    if (pool)
        g_thread_pool_free(pool, FALSE, TRUE);
}

enum fv_mode dispatch_batch_mode(struct dispatch *d, unsigned int qidx)
{
    return (enum fv_mode)__atomic_load_n(&d->q[qidx].mode, __ATOMIC_RELAXED);
}

void dispatch_submit(struct dispatch *d, unsigned int qidx, enum fv_mode mode,
                     struct fv_req *req)
{
    GError *err = NULL;

    switch (mode) {
    case FV_MODE_POOL:
        /*
         * The pool pointer is set before the queue thread starts and
         * cleared after it is joined, so the queue thread reads it
         * without the lock.
         */
        if (d->q[qidx].pool) {
            __atomic_fetch_add(&d->q[qidx].handoff, 1, __ATOMIC_RELEASE);
            /* On failure the task stays queued for an existing thread. */
            if (!g_thread_pool_push(d->q[qidx].pool, req, &err)) {
                vfs_warn_ratelimited("queue %u: pool push: %s", qidx,
                                     err ? err->message : "failed");
                g_clear_error(&err);
            }
            return;
        }
        break;
    case FV_MODE_SIDE:
        __atomic_fetch_add(&d->side_handoff, 1, __ATOMIC_RELEASE);
        if (!g_thread_pool_push(d->side, req, &err)) {
            vfs_warn_ratelimited("side pool push: %s",
                                 err ? err->message : "failed");
            g_clear_error(&err);
        }
        return;
    default:
        break;
    }
    d->run(req, FV_MODE_INLINE);
}

int dispatch_set_mode(struct dispatch *d, unsigned int qidx, enum fv_mode mode,
                      unsigned int pool_size)
{
    struct dispatch_queue *dq;

    if (qidx >= d->nqueues ||
        (mode != FV_MODE_INLINE && mode != FV_MODE_POOL) ||
        pool_size > DISPATCH_MAX_POOL_SIZE)
        return -EINVAL;
    dq = &d->q[qidx];
    pthread_mutex_lock(&dq->lock);
    __atomic_store_n(&dq->pool_size, pool_size, __ATOMIC_RELAXED);
    if (dq->pool) {
        GError *err = NULL;

        if (!g_thread_pool_set_max_threads(dq->pool,
                                           (gint)dispatch_pool_threads(pool_size),
                                           &err)) {
            vfs_warn("queue %u: resizing pool to %u: %s", qidx,
                     dispatch_pool_threads(pool_size),
                     err ? err->message : "failed");
            g_clear_error(&err);
        }
    }
    /*
     * Resize first so a switch to pool finds the pool at its new size.
     * Relaxed is enough for the mode: the queue thread only decides where
     * its next batch runs from it, every request carries its own chain and
     * reply state, and pushes are serialized by the ring's push lock
     * whichever thread does them, so a batch that still saw the old mode
     * is as correct as one that saw the new.
     */
    /* dq->lock orders setters, so the old mode read here is exact */
    trace_mode_switch(qidx, (uint32_t)__atomic_load_n(&dq->mode,
                                                      __ATOMIC_RELAXED),
                      (uint32_t)mode, pool_size);
    __atomic_store_n(&dq->mode, (int)mode, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&dq->lock);
    return 0;
}

int dispatch_get_mode(struct dispatch *d, unsigned int qidx,
                      enum fv_mode *mode, unsigned int *pool_size)
{
    if (qidx >= d->nqueues)
        return -EINVAL;
    if (mode)
        *mode = (enum fv_mode)__atomic_load_n(&d->q[qidx].mode,
                                              __ATOMIC_RELAXED);
    if (pool_size)
        *pool_size = __atomic_load_n(&d->q[qidx].pool_size, __ATOMIC_RELAXED);
    return 0;
}

int dispatch_set_pool_sched(struct dispatch *d, unsigned int qidx,
                            enum fv_pool_sched sched)
{
    if (qidx >= d->nqueues || (unsigned int)sched >= FV_POOL_SCHED_COUNT)
        return -EINVAL;
    __atomic_store_n(&d->q[qidx].pool_sched, (int)sched, __ATOMIC_RELAXED);
    return 0;
}

enum fv_pool_sched dispatch_get_pool_sched(struct dispatch *d,
                                           unsigned int qidx)
{
    if (qidx >= d->nqueues)
        return FV_POOL_SCHED_BATCH;
    return (enum fv_pool_sched)__atomic_load_n(&d->q[qidx].pool_sched,
                                               __ATOMIC_RELAXED);
}
