/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Execution modes (see dispatch.h). Hot path: dispatch_batch_mode() and
 * dispatch_submit(); everything else is setup or control.
 */
#include "dispatch.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
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
    if (mode == FV_MODE_AUTO)
        return "auto";
    if ((unsigned int)mode >= FV_MODE_COUNT)
        return "unknown";
    return mode_names[mode];
}

/*
 * The policy this pool thread runs under, as last set here; -1 before the
 * thread starts. Checked when it starts and on every pass of its loop
 * (before each request and each sleep: the policy can change live); a
 * change is one syscall.
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

static void pool_thread_take_sched(struct dispatch_queue *dq)
{
    int want = __atomic_load_n(&dq->pool_sched, __ATOMIC_RELAXED);
    struct pool_sched_attr attr = { .size = sizeof(attr) };

    if (want == pool_thread_sched)
        return;
    /*
     * batch: a worker woken on the queue thread's CPU waits for its turn
     * instead of preempting it, so the queue thread hands off its whole
     * batch first; but it also waits behind busy vCPU threads (STATS.md,
     * "Pool hand-off"). Nice stays 0: no privilege is needed either way.
     */
    attr.sched_policy = want == FV_POOL_SCHED_BATCH ? SCHED_BATCH : SCHED_OTHER;
    if (syscall(SYS_sched_setattr, 0, &attr, 0) < 0)
        vfs_warn_ratelimited("queue %u: pool thread policy %s: %s", dq->idx,
                             fv_pool_sched_name((enum fv_pool_sched)want),
                             strerror(errno));
    /* on failure too: do not retry on every request */
    pool_thread_sched = want;
}

/* The queue whose pool this thread belongs to; NULL on other threads. */
static __thread struct dispatch_queue *pool_thread_dq;
/* dispatch_pool_finishing() counted this thread in pool->looking */
static __thread bool pool_thread_finishing;

void dispatch_pool_finishing(void)
{
    struct dispatch_queue *dq = pool_thread_dq;

    if (!dq || pool_thread_finishing)
        return;
    /*
     * No lock: a raised count only lets pool_assign_locked() leave a
     * request to this thread, which is on its way to the FIFO; the count
     * drops under the lock when it gets there.
     */
    __atomic_fetch_add(&dq->pool.looking, 1, __ATOMIC_RELAXED);
    pool_thread_finishing = true;
}

/* Next queued request, or NULL; pool->mu held. */
static struct fv_req *pool_take(struct dispatch_pool *pool)
{
    struct fv_req *req = pool->head;

    if (req) {
        pool->head = req->pool_next;
        if (!pool->head)
            pool->tail = NULL;
        req->pool_next = NULL;
        pool->queued--;
    }
    return req;
}

static void *pool_thread(void *arg)
{
    struct dispatch_queue *dq = arg;
    struct dispatch_pool *pool = &dq->pool;
    char name[16];

    /* born under the creator's policy: take the queue's before anything */
    pool_thread_take_sched(dq);
    snprintf(name, sizeof(name), "vfs-pool%u", dq->idx);
    pthread_setname_np(pthread_self(), name);
    pool_thread_dq = dq;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        struct fv_req *req;
        struct timespec ts;
        int r;

        /*
         * The live policy, on every pass: before a request, and before a
         * sleep, so a thread woken for a request another took (or busy on
         * the lock) does not sleep on under the old one. Under the lock,
         * but a syscall only when the policy changed.
         */
        pool_thread_take_sched(dq);
        req = pool_take(pool);
        if (req) {
            pthread_mutex_unlock(&pool->mu);
            dq->d->run(req, FV_MODE_POOL);
            pthread_mutex_lock(&pool->mu);
            if (pool_thread_finishing) {
                pool_thread_finishing = false;
                __atomic_fetch_sub(&pool->looking, 1, __ATOMIC_RELAXED);
                if (pool->claimed)
                    pool->claimed--;
            }
            continue;
        }
        /* nothing queued: a closed or shrunk pool loses this thread */
        if (!pool->running || pool->threads > pool->max)
            break;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += DISPATCH_POOL_IDLE_S;
        pool->idle++;
        r = pthread_cond_timedwait(&pool->work, &pool->mu, &ts);
        pool->idle--;
        if (pool->signaled)
            pool->signaled--;
        if (r == ETIMEDOUT && !pool->head)
            break;
    }
    pool->threads--;
    if (!pool->threads)
        pthread_cond_broadcast(&pool->gone);
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

/*
 * Decide who runs the @n requests just queued: a thread finishing its
 * request takes one (it looks again within microseconds), else an idle
 * thread is woken, else a new one starts while below max; running threads
 * take the rest when they are done. pool->mu held.
 */
static void pool_assign_locked(struct dispatch_pool *pool, unsigned int n,
                               unsigned int *wake, unsigned int *spawn)
{
    for (; n; n--) {
        if (__atomic_load_n(&pool->looking, __ATOMIC_RELAXED) >
            pool->claimed) {
            pool->claimed++;
        } else if (pool->idle > pool->signaled) {
            pool->signaled++;
            (*wake)++;
        } else if (pool->threads < pool->max) {
            pool->threads++;
            (*spawn)++;
        } else {
            break;
        }
    }
}

/* Carry out pool_assign_locked()'s decisions, without the lock. */
static void pool_act(struct dispatch_queue *dq, unsigned int wake,
                     unsigned int spawn)
{
    struct dispatch_pool *pool = &dq->pool;
    struct fv_req *req;
    pthread_attr_t attr;
    unsigned int failed = 0;

    while (wake--)
        pthread_cond_signal(&pool->work);
    if (!spawn)
        return;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (; spawn; spawn--) {
        pthread_t th;
        int r = pthread_create(&th, &attr, pool_thread, dq);

        if (r) {
            vfs_warn_ratelimited("queue %u: pool thread: %s", dq->idx,
                                 strerror(r));
            failed = spawn;
            break;
        }
    }
    pthread_attr_destroy(&attr);
    if (!failed)
        return;
    pthread_mutex_lock(&pool->mu);
    pool->threads -= failed;
    if (pool->threads) {
        /* the others take what is queued */
        pthread_mutex_unlock(&pool->mu);
        return;
    }
    /* no thread at all: whatever is queued runs here, not never */
    while ((req = pool_take(pool))) {
        pthread_mutex_unlock(&pool->mu);
        dq->d->run(req, FV_MODE_INLINE);
        pthread_mutex_lock(&pool->mu);
    }
    pthread_cond_broadcast(&pool->gone);
    pthread_mutex_unlock(&pool->mu);
}

/*
 * Queue @req on the pool. Who runs it is decided at dispatch_flush() (end
 * of the queue thread's batch) or every DISPATCH_POOL_WAKE_CHUNK requests:
 * a worker woken mid-batch would preempt the queue thread on a shared CPU
 * and ping-pong with it request by request.
 */
static void pool_submit(struct dispatch_queue *dq, struct fv_req *req)
{
    struct dispatch_pool *pool = &dq->pool;
    unsigned int wake = 0, spawn = 0;

    req->pool_next = NULL;
    pthread_mutex_lock(&pool->mu);
    if (pool->tail)
        pool->tail->pool_next = req;
    else
        pool->head = req;
    pool->tail = req;
    pool->queued++;
    if (++pool->deferred >= DISPATCH_POOL_WAKE_CHUNK) {
        pool_assign_locked(pool, pool->deferred, &wake, &spawn);
        pool->deferred = 0;
    }
    pthread_mutex_unlock(&pool->mu);
    pool_act(dq, wake, spawn);
}

void dispatch_flush(struct dispatch *d, unsigned int qidx)
{
    struct dispatch_queue *dq = &d->q[qidx];
    struct dispatch_pool *pool = &dq->pool;
    unsigned int wake = 0, spawn = 0;

    /* the queue thread alone sets deferred: no lock to find it zero */
    if (!__atomic_load_n(&pool->deferred, __ATOMIC_RELAXED))
        return;
    pthread_mutex_lock(&pool->mu);
    pool_assign_locked(pool, pool->deferred, &wake, &spawn);
    pool->deferred = 0;
    pthread_mutex_unlock(&pool->mu);
    pool_act(dq, wake, spawn);
}

static void side_worker(gpointer data, gpointer user_data)
{
    struct dispatch *d = user_data;

    (void)__atomic_load_n(&d->side_handoff, __ATOMIC_ACQUIRE);
    d->run(data, FV_MODE_SIDE);
}

static void pool_init(struct dispatch_pool *pool, unsigned int max)
{
    pthread_condattr_t attr;

    memset(pool, 0, sizeof(*pool));
    pthread_mutex_init(&pool->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&pool->work, &attr);
    pthread_condattr_destroy(&attr);
    pthread_cond_init(&pool->gone, NULL);
    pool->max = max;
}

static void pool_destroy(struct dispatch_pool *pool)
{
    pthread_cond_destroy(&pool->work);
    pthread_cond_destroy(&pool->gone);
    pthread_mutex_destroy(&pool->mu);
}

unsigned int dispatch_pool_threads(unsigned int pool_size)
{
    return pool_size ? pool_size : 1;
}

static bool queue_mode_ok(enum fv_mode mode)
{
    return mode == FV_MODE_INLINE || mode == FV_MODE_POOL ||
           mode == FV_MODE_AUTO;
}

int dispatch_init(struct dispatch *d, unsigned int nqueues, enum fv_mode mode,
                  unsigned int pool_size, enum fv_pool_sched pool_sched,
                  dispatch_run_fn run)
{
    GError *err = NULL;

    if (!run || nqueues == 0 || nqueues > VU_MAX_QUEUES ||
        !queue_mode_ok(mode) ||
        pool_size > DISPATCH_MAX_POOL_SIZE ||
        (unsigned int)pool_sched >= FV_POOL_SCHED_COUNT)
        return -EINVAL;
    memset(d, 0, sizeof(*d));
    d->run = run;
    d->nqueues = nqueues;
    {
        cpu_set_t set;

        /* auto's measure depends on it; unknown counts as several */
        d->cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ?
                  (unsigned int)CPU_COUNT(&set) : 2;
    }
    for (unsigned int i = 0; i < nqueues; i++) {
        struct dispatch_queue *dq = &d->q[i];

        dq->d = d;
        dq->idx = i;
        dq->mode = (int)mode;
        dq->pool_size = pool_size;
        dq->pool_sched = (int)pool_sched;
        dq->autop.slow_ns = DISPATCH_AUTO_SLOW_NS;
        pthread_mutex_init(&dq->lock, NULL);
        pool_init(&dq->pool, dispatch_pool_threads(pool_size));
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
        for (unsigned int i = 0; i < nqueues; i++) {
            pthread_mutex_destroy(&d->q[i].lock);
            pool_destroy(&d->q[i].pool);
        }
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
        pool_destroy(&d->q[i].pool);
    }
    if (d->side)
        g_thread_pool_free(d->side, FALSE, TRUE);
    d->side = NULL;
    d->run = NULL;
}

int dispatch_queue_start(struct dispatch *d, unsigned int qidx)
{
    struct dispatch_pool *pool;

    if (qidx >= d->nqueues)
        return -EINVAL;
    pool = &d->q[qidx].pool;
    pthread_mutex_lock(&pool->mu);
    pool->running = true;
    pthread_mutex_unlock(&pool->mu);
    return 0;
}

void dispatch_queue_stop(struct dispatch *d, unsigned int qidx)
{
    struct dispatch_pool *pool;

    if (qidx >= d->nqueues)
        return;
    pool = &d->q[qidx].pool;
    pthread_mutex_lock(&pool->mu);
    pool->running = false;
    pthread_cond_broadcast(&pool->work);
    /* nothing is queued by now: every thread leaves its wait and exits */
    while (pool->threads)
        pthread_cond_wait(&pool->gone, &pool->mu);
    pool->signaled = pool->claimed = 0;
    __atomic_store_n(&pool->looking, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&pool->mu);
}

void dispatch_pool_counts(struct dispatch *d, unsigned int qidx,
                          unsigned int *threads, unsigned int *queued)
{
    struct dispatch_pool *pool = &d->q[qidx].pool;

    pthread_mutex_lock(&pool->mu);
    *threads = pool->threads;
    *queued = pool->queued;
    pthread_mutex_unlock(&pool->mu);
}

enum fv_mode dispatch_batch_mode(struct dispatch *d, unsigned int qidx)
{
    return (enum fv_mode)__atomic_load_n(&d->q[qidx].mode, __ATOMIC_RELAXED);
}

enum fv_mode dispatch_auto_rule(unsigned int depth, uint64_t inline_ns,
                                uint64_t slow_ns, bool probe_due)
{
    if (depth < DISPATCH_AUTO_MIN_DEPTH || inline_ns < slow_ns || probe_due)
        return FV_MODE_INLINE;
    return FV_MODE_POOL;
}

enum fv_mode dispatch_auto_choose(struct dispatch *d, unsigned int qidx,
                                  unsigned int depth)
{
    struct dispatch_auto *a = &d->q[qidx].autop;
    uint64_t avg = __atomic_load_n(&a->inline_ns, __ATOMIC_RELAXED);
    uint64_t slow = __atomic_load_n(&a->slow_ns, __ATOMIC_RELAXED);
    enum fv_mode m = dispatch_auto_rule(depth, avg, slow, false);

    /* only a pool choice counts towards (or is turned into) a probe */
    if (m == FV_MODE_POOL && ++a->since_probe >= DISPATCH_AUTO_PROBE_EVERY) {
        a->since_probe = 0;
        m = dispatch_auto_rule(depth, avg, slow, true);
    }
    if (m == FV_MODE_POOL)
        __atomic_store_n(&a->chose_pool, a->chose_pool + 1, __ATOMIC_RELAXED);
    else
        __atomic_store_n(&a->chose_inline, a->chose_inline + 1,
                         __ATOMIC_RELAXED);
    return m;
}

void dispatch_auto_sample(struct dispatch *d, unsigned int qidx, uint64_t ns)
{
    struct dispatch_auto *a = &d->q[qidx].autop;
    uint64_t avg = __atomic_load_n(&a->inline_ns, __ATOMIC_RELAXED);
    uint64_t slow = __atomic_load_n(&a->slow_ns, __ATOMIC_RELAXED);
    uint64_t limit = avg * 4 > 2 * slow ? avg * 4 : 2 * slow;
    int64_t delta;

    /*
     * One outlier (the queue thread preempted mid-request) must not send
     * a fast queue to the pool for hundreds of requests: a sample counts
     * for at most 4x the average (2x the threshold when that is more), so
     * a real change to slow requests takes a few samples, not one.
     */
    if (avg && ns > limit)
        ns = limit;
    delta = (int64_t)(ns - avg);
    /* the first sample is the average; later ones move it by 1/8 */
    avg = avg ? (uint64_t)((int64_t)avg + delta / (1 << DISPATCH_AUTO_EWMA_SHIFT))
              : ns;
    __atomic_store_n(&a->inline_ns, avg ? avg : 1, __ATOMIC_RELAXED);
}

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void dispatch_auto_begin(struct dispatch *d, unsigned int qidx,
                         struct dispatch_auto_clock *c)
{
    struct dispatch_auto *a = &d->q[qidx].autop;

    /* every run while the queue looks slow (probes, shallow moments) */
    c->on = ++a->tick % DISPATCH_AUTO_SAMPLE_EVERY == 0 ||
            __atomic_load_n(&a->inline_ns, __ATOMIC_RELAXED) >=
                __atomic_load_n(&a->slow_ns, __ATOMIC_RELAXED);
    if (!c->on)
        return;
    c->wall = clock_ns(CLOCK_MONOTONIC);
    c->cpu = d->cpus == 1 ? clock_ns(CLOCK_THREAD_CPUTIME_ID) : 0;
}

void dispatch_auto_end(struct dispatch *d, unsigned int qidx,
                       const struct dispatch_auto_clock *c)
{
    uint64_t wall, cpu;

    if (!c->on)
        return;
    wall = clock_ns(CLOCK_MONOTONIC) - c->wall;
    if (d->cpus == 1) {
        /* one CPU: only the time it waited for something else overlaps */
        cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - c->cpu;
        wall = wall > cpu ? wall - cpu : 0;
    }
    dispatch_auto_sample(d, qidx, wall);
}

void dispatch_auto_get(struct dispatch *d, unsigned int qidx,
                       uint64_t *inline_ns, uint64_t *chose_inline,
                       uint64_t *chose_pool)
{
    struct dispatch_auto *a;

    *inline_ns = *chose_inline = *chose_pool = 0;
    if (qidx >= d->nqueues)
        return;
    a = &d->q[qidx].autop;
    *inline_ns = __atomic_load_n(&a->inline_ns, __ATOMIC_RELAXED);
    *chose_inline = __atomic_load_n(&a->chose_inline, __ATOMIC_RELAXED);
    *chose_pool = __atomic_load_n(&a->chose_pool, __ATOMIC_RELAXED);
}

int dispatch_set_auto_slow(struct dispatch *d, unsigned int qidx,
                           unsigned int us)
{
    if (qidx >= d->nqueues || !fv_auto_slow_ok(us))
        return -EINVAL;
    __atomic_store_n(&d->q[qidx].autop.slow_ns, (uint64_t)us * 1000u,
                     __ATOMIC_RELAXED);
    return 0;
}

uint64_t dispatch_get_auto_slow(struct dispatch *d, unsigned int qidx)
{
    if (qidx >= d->nqueues)
        return DISPATCH_AUTO_SLOW_NS;
    return __atomic_load_n(&d->q[qidx].autop.slow_ns, __ATOMIC_RELAXED);
}

void dispatch_submit(struct dispatch *d, unsigned int qidx, enum fv_mode mode,
                     struct fv_req *req)
{
    GError *err = NULL;

    switch (mode) {
    case FV_MODE_POOL:
        pool_submit(&d->q[qidx], req);
        return;
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

    if (qidx >= d->nqueues || !queue_mode_ok(mode) ||
        pool_size > DISPATCH_MAX_POOL_SIZE)
        return -EINVAL;
    dq = &d->q[qidx];
    pthread_mutex_lock(&dq->lock);
    __atomic_store_n(&dq->pool_size, pool_size, __ATOMIC_RELAXED);
    pthread_mutex_lock(&dq->pool.mu);
    dq->pool.max = dispatch_pool_threads(pool_size);
    /* idle threads above the new size exit now, busy ones when done */
    if (dq->pool.threads > dq->pool.max)
        pthread_cond_broadcast(&dq->pool.work);
    pthread_mutex_unlock(&dq->pool.mu);
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
        return FV_POOL_SCHED_NORMAL;
    return (enum fv_pool_sched)__atomic_load_n(&d->q[qidx].pool_sched,
                                               __ATOMIC_RELAXED);
}
