/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Per-request counters (see stats.h for the design, STATS.md for the
 * exported schema).
 *
 * Hot path: stats_record_req(), stats_record_kick(), stats_pool_busy().
 * Everything else is the reader's side (snapshot, JSON, reset).
 */
#include "stats.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dispatch.h"
#include "virtqueue.h"

/* ---- histogram arithmetic ---- */

unsigned int stats_bucket(uint64_t v)
{
    unsigned int e;

    if (v < STATS_SUB_BUCKETS)
        return (unsigned int)v;
    e = 63u - (unsigned int)__builtin_clzll(v);
    if (e > STATS_MAX_EXP)
        return STATS_NBUCKETS - 1;
    return ((e - STATS_SUB_BITS + 1) << STATS_SUB_BITS) +
           (unsigned int)((v >> (e - STATS_SUB_BITS)) & (STATS_SUB_BUCKETS - 1));
}

uint64_t stats_bucket_lower(unsigned int idx)
{
    unsigned int e, sub;

    if (idx < STATS_SUB_BUCKETS)
        return idx;
    if (idx >= STATS_NBUCKETS)
        return UINT64_MAX;
    e = (idx >> STATS_SUB_BITS) + STATS_SUB_BITS - 1;
    sub = idx & (STATS_SUB_BUCKETS - 1);
    return (uint64_t)(STATS_SUB_BUCKETS + sub) << (e - STATS_SUB_BITS);
}

uint64_t stats_bucket_upper(unsigned int idx)
{
    if (idx + 1 >= STATS_NBUCKETS)
        return UINT64_MAX;
    return stats_bucket_lower(idx + 1) - 1;
}

void stats_histo_snap_add(struct stats_histo_snap *h, uint64_t v)
{
    h->b[stats_bucket(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

uint64_t stats_histo_percentile(const struct stats_histo_snap *h, double q)
{
    uint64_t rank, seen = 0;

    if (!h->count)
        return 0;
    if (q <= 0)
        q = 0;
    /* ceil(q * count), at least 1, at most count */
    rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count)
        rank++;
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    for (unsigned int i = 0; i < STATS_NBUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t up = stats_bucket_upper(i);

            return up < h->max ? up : h->max;
        }
    }
    /* buckets summed while writers ran may trail count by a few */
    return h->max;
}

/* ---- shards (written by one thread, read by any) ---- */

/* Single-writer updates: a plain load and store, both atomic for readers. */
static inline void ctr_add(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + v,
                     __ATOMIC_RELAXED);
}

static inline uint64_t ctr_get(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline void ctr_zero(uint64_t *p)
{
    __atomic_store_n(p, 0, __ATOMIC_RELAXED);
}

struct stats_histo {
    uint64_t sum;
    uint64_t max;
    uint64_t b[STATS_NBUCKETS];
};

/*
 * Every scalar a request updates sits in the first two cache lines, so a
 * record touches those plus one bucket line per phase.
 */
struct stats_op {
    uint64_t count;
    uint64_t errors;
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t sum[STATS_NPHASES];
    uint64_t max[STATS_NPHASES];
    uint64_t b[STATS_NPHASES][STATS_NBUCKETS];
};

/* One thread's counters for one queue. */
struct stats_qshard {
    uint64_t kicks;
    uint64_t kick_signals;
    struct stats_histo reqs_per_kick;
    /* allocated on a combination's first request; atomic pointers */
    struct stats_op *ops[FV_MODE_COUNT][STATS_OP_SLOTS];
};

struct stats_shard {
    struct stats_shard *next;   /* under stats.lock */
    pthread_t owner;            /* under stats.lock */
    uint64_t epoch;             /* atomic: stats.epoch of the contents */
    struct stats_qshard **q;    /* [nqueues], atomic pointers */
};

#define STATS_CACHELINE 64

/*
 * Per queue, written by several threads (atomic RMW): one cache line each
 * so two queues' push paths do not bounce one line between them.
 */
struct stats_queue_shared {
    struct vq_counters vc;      /* only grows (virtqueue.c) */
    uint64_t mode_switches;
    int pool_busy;
    /* vc at the last reset, under stats.lock */
    struct vq_counters vc_base;
} __attribute__((aligned(STATS_CACHELINE)));

struct stats {
    /* read by every record: kept off the line the mutex dirties */
    uint64_t id;                /* tells a thread's cached shard apart */
    unsigned int nqueues;
    uint64_t epoch;             /* atomic, bumped by a reset */
    struct stats_queue_shared *qs;
    pthread_mutex_t lock __attribute__((aligned(STATS_CACHELINE)));
    /* under lock (shard list, resets) */
    struct stats_shard *shards;
    uint64_t reset_ns;          /* atomic */
};

static uint64_t stats_next_id = 1;

static __thread uint64_t tls_id;
static __thread struct stats_shard *tls_shard;

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A histogram is a sum, a max and buckets, wherever they are laid out. */
static inline void histo_add(uint64_t *sum, uint64_t *max, uint64_t *b,
                             uint64_t v)
{
    ctr_add(&b[stats_bucket(v)], 1);
    ctr_add(sum, v);
    if (v > ctr_get(max))
        __atomic_store_n(max, v, __ATOMIC_RELAXED);
}

static void histo_zero(uint64_t *sum, uint64_t *max, uint64_t *b)
{
    ctr_zero(sum);
    ctr_zero(max);
    for (unsigned int i = 0; i < STATS_NBUCKETS; i++)
        ctr_zero(&b[i]);
}

static void histo_sum(struct stats_histo_snap *dst, const uint64_t *sum,
                      const uint64_t *max, const uint64_t *b)
{
    uint64_t m = ctr_get(max);

    dst->sum += ctr_get(sum);
    if (m > dst->max)
        dst->max = m;
    for (unsigned int i = 0; i < STATS_NBUCKETS; i++) {
        uint64_t n = ctr_get(&b[i]);

        dst->b[i] += n;
        dst->count += n;
    }
}

/*
 * The calling thread's shard of @s. Slow path once per thread (and device):
 * a thread that already has one (its TLS was overwritten by another device)
 * or whose pthread_t belonged to a thread that exited takes that shard back,
 * which keeps the list as long as the number of distinct threads.
 */
static struct stats_shard *shard_get_slow(struct stats *s)
{
    pthread_t self = pthread_self();
    struct stats_shard *sh;

    pthread_mutex_lock(&s->lock);
    for (sh = s->shards; sh; sh = sh->next) {
        if (pthread_equal(sh->owner, self))
            break;
    }
    if (!sh) {
        sh = calloc(1, sizeof(*sh));
        if (sh)
            sh->q = calloc(s->nqueues, sizeof(*sh->q));
        if (!sh || !sh->q) {
            free(sh);
            pthread_mutex_unlock(&s->lock);
            return NULL;
        }
        sh->owner = self;
        __atomic_store_n(&sh->epoch, __atomic_load_n(&s->epoch,
                                                     __ATOMIC_RELAXED),
                         __ATOMIC_RELAXED);
        sh->next = s->shards;
        s->shards = sh;
    }
    pthread_mutex_unlock(&s->lock);
    tls_id = s->id;
    tls_shard = sh;
    return sh;
}

/* A reset happened since this shard was last written: start it over. */
static void shard_clear(struct stats *s, struct stats_shard *sh, uint64_t epoch)
{
    for (unsigned int q = 0; q < s->nqueues; q++) {
        struct stats_qshard *qs = __atomic_load_n(&sh->q[q], __ATOMIC_RELAXED);

        if (!qs)
            continue;
        ctr_zero(&qs->kicks);
        ctr_zero(&qs->kick_signals);
        histo_zero(&qs->reqs_per_kick.sum, &qs->reqs_per_kick.max,
                   qs->reqs_per_kick.b);
        for (unsigned int m = 0; m < FV_MODE_COUNT; m++) {
            for (unsigned int o = 0; o < STATS_OP_SLOTS; o++) {
                struct stats_op *op = __atomic_load_n(&qs->ops[m][o],
                                                      __ATOMIC_RELAXED);

                if (!op)
                    continue;
                ctr_zero(&op->count);
                ctr_zero(&op->errors);
                ctr_zero(&op->bytes_in);
                ctr_zero(&op->bytes_out);
                for (unsigned int p = 0; p < STATS_NPHASES; p++)
                    histo_zero(&op->sum[p], &op->max[p], op->b[p]);
            }
        }
    }
    /* readers that see the new epoch see the zeroes (or later values) */
    __atomic_store_n(&sh->epoch, epoch, __ATOMIC_RELEASE);
}

static struct stats_qshard *qshard_get(struct stats *s, unsigned int qidx)
{
    struct stats_shard *sh = tls_id == s->id ? tls_shard : shard_get_slow(s);
    uint64_t epoch = __atomic_load_n(&s->epoch, __ATOMIC_RELAXED);
    struct stats_qshard *qs;

    if (!sh || qidx >= s->nqueues)
        return NULL;
    if (__builtin_expect(__atomic_load_n(&sh->epoch, __ATOMIC_RELAXED) != epoch, 0))
        shard_clear(s, sh, epoch);
    qs = __atomic_load_n(&sh->q[qidx], __ATOMIC_RELAXED);
    if (__builtin_expect(!qs, 0)) {
        qs = calloc(1, sizeof(*qs));
        if (!qs)
            return NULL;
        __atomic_store_n(&sh->q[qidx], qs, __ATOMIC_RELEASE);
    }
    return qs;
}

static inline uint64_t span(uint64_t from, uint64_t to)
{
    return to > from ? to - from : 0;
}

static inline void phase_add(struct stats_op *op, unsigned int p, uint64_t v)
{
    histo_add(&op->sum[p], &op->max[p], op->b[p], v);
}

void stats_record_req(struct stats *s, unsigned int qidx,
                      const struct fv_req *req)
{
    unsigned int mode = req->mode < FV_MODE_COUNT ? req->mode : FV_MODE_INLINE;
    unsigned int slot = req->opcode < FV_OPCODE_MAX ? req->opcode
                                                    : STATS_OP_OTHER;
    struct stats_qshard *qs = qshard_get(s, qidx);
    struct stats_op *op;

    if (!qs)
        return;
    op = __atomic_load_n(&qs->ops[mode][slot], __ATOMIC_RELAXED);
    if (__builtin_expect(!op, 0)) {
        op = calloc(1, sizeof(*op));
        if (!op)
            return;
        __atomic_store_n(&qs->ops[mode][slot], op, __ATOMIC_RELEASE);
    }
    ctr_add(&op->count, 1);
    if (req->error)
        ctr_add(&op->errors, 1);
    ctr_add(&op->bytes_in, req->in_len);
    ctr_add(&op->bytes_out, req->out_len);
    phase_add(op, STATS_WAIT, span(req->t_pop, req->t_start));
    phase_add(op, STATS_SERVICE, span(req->t_start, req->t_reply));
    phase_add(op, STATS_COMPLETE, span(req->t_reply, req->t_done));
    phase_add(op, STATS_TOTAL, span(req->t_pop, req->t_done));
}

void stats_record_kick(struct stats *s, unsigned int qidx, uint64_t signals,
                       unsigned int nreqs)
{
    struct stats_qshard *qs = qshard_get(s, qidx);

    if (!qs)
        return;
    ctr_add(&qs->kicks, 1);
    ctr_add(&qs->kick_signals, signals);
    histo_add(&qs->reqs_per_kick.sum, &qs->reqs_per_kick.max,
              qs->reqs_per_kick.b, nreqs);
}

void stats_pool_busy(struct stats *s, unsigned int qidx, int delta)
{
    if (qidx < s->nqueues)
        __atomic_add_fetch(&s->qs[qidx].pool_busy, delta, __ATOMIC_RELAXED);
}

void stats_mode_switch(struct stats *s, unsigned int qidx)
{
    if (qidx < s->nqueues)
        __atomic_add_fetch(&s->qs[qidx].mode_switches, 1, __ATOMIC_RELAXED);
}

struct vq_counters *stats_vq_counters(struct stats *s, unsigned int qidx)
{
    return qidx < s->nqueues ? &s->qs[qidx].vc : NULL;
}

/* ---- lifetime ---- */

struct stats *stats_new(unsigned int nqueues)
{
    struct stats *s;

    if (!nqueues)
        return NULL;
    s = aligned_alloc(STATS_CACHELINE, sizeof(*s));
    if (!s)
        return NULL;
    memset(s, 0, sizeof(*s));
    s->qs = aligned_alloc(STATS_CACHELINE, nqueues * sizeof(*s->qs));
    if (!s->qs) {
        free(s);
        return NULL;
    }
    memset(s->qs, 0, nqueues * sizeof(*s->qs));
    s->nqueues = nqueues;
    s->id = __atomic_fetch_add(&stats_next_id, 1, __ATOMIC_RELAXED);
    s->reset_ns = mono_ns();
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

void stats_free(struct stats *s)
{
    struct stats_shard *sh, *next;

    if (!s)
        return;
    for (sh = s->shards; sh; sh = next) {
        next = sh->next;
        for (unsigned int q = 0; q < s->nqueues; q++) {
            struct stats_qshard *qs = sh->q[q];

            if (!qs)
                continue;
            for (unsigned int m = 0; m < FV_MODE_COUNT; m++) {
                for (unsigned int o = 0; o < STATS_OP_SLOTS; o++)
                    free(qs->ops[m][o]);
            }
            free(qs);
        }
        free(sh->q);
        free(sh);
    }
    pthread_mutex_destroy(&s->lock);
    free(s->qs);
    free(s);
}

void stats_reset(struct stats *s)
{
    pthread_mutex_lock(&s->lock);
    for (unsigned int q = 0; q < s->nqueues; q++) {
        struct stats_queue_shared *qs = &s->qs[q];

        /* virtqueue.c's load+store increments would undo a zeroing */
        qs->vc_base.notify_sent = __atomic_load_n(&qs->vc.notify_sent,
                                                  __ATOMIC_RELAXED);
        qs->vc_base.notify_suppressed =
            __atomic_load_n(&qs->vc.notify_suppressed, __ATOMIC_RELAXED);
        /* atomic RMW on the writers' side: a store is exact */
        __atomic_store_n(&qs->mode_switches, 0, __ATOMIC_RELAXED);
    }
    __atomic_store_n(&s->reset_ns, mono_ns(), __ATOMIC_RELAXED);
    /* shards: each writer clears its own when it sees the new epoch */
    __atomic_add_fetch(&s->epoch, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&s->lock);
}

/* ---- snapshots ---- */

void stats_snap_free(struct stats_snap *snap)
{
    if (!snap)
        return;
    for (unsigned int q = 0; q < snap->nqueues && snap->q; q++) {
        for (unsigned int m = 0; m < FV_MODE_COUNT; m++) {
            for (unsigned int o = 0; o < STATS_OP_SLOTS; o++)
                free(snap->q[q].ops[m][o]);
        }
    }
    free(snap->q);
    free(snap);
}

/* Add @qs into @dst; false if out of memory. */
static bool snap_add_qshard(struct stats_queue_snap *dst,
                            const struct stats_qshard *qs)
{
    dst->kicks += ctr_get(&qs->kicks);
    dst->kick_signals += ctr_get(&qs->kick_signals);
    histo_sum(&dst->reqs_per_kick, &qs->reqs_per_kick.sum,
              &qs->reqs_per_kick.max, qs->reqs_per_kick.b);
    for (unsigned int m = 0; m < FV_MODE_COUNT; m++) {
        for (unsigned int o = 0; o < STATS_OP_SLOTS; o++) {
            const struct stats_op *op = __atomic_load_n(&qs->ops[m][o],
                                                        __ATOMIC_ACQUIRE);
            struct stats_op_snap *d;

            if (!op)
                continue;
            d = dst->ops[m][o];
            if (!d) {
                d = calloc(1, sizeof(*d));
                if (!d)
                    return false;
                dst->ops[m][o] = d;
            }
            d->count += ctr_get(&op->count);
            d->errors += ctr_get(&op->errors);
            d->bytes_in += ctr_get(&op->bytes_in);
            d->bytes_out += ctr_get(&op->bytes_out);
            for (unsigned int p = 0; p < STATS_NPHASES; p++)
                histo_sum(&d->ph[p], &op->sum[p], &op->max[p], op->b[p]);
        }
    }
    return true;
}

struct stats_snap *stats_snapshot(struct stats *s)
{
    struct stats_snap *snap;
    uint64_t epoch;
    bool ok = true;

    snap = calloc(1, sizeof(*snap));
    if (!snap)
        return NULL;
    snap->q = calloc(s->nqueues, sizeof(*snap->q));
    if (!snap->q) {
        free(snap);
        return NULL;
    }
    snap->nqueues = s->nqueues;

    pthread_mutex_lock(&s->lock);
    epoch = __atomic_load_n(&s->epoch, __ATOMIC_ACQUIRE);
    snap->time_ns = mono_ns();
    snap->since_reset_ns = span(__atomic_load_n(&s->reset_ns, __ATOMIC_RELAXED),
                                snap->time_ns);
    for (struct stats_shard *sh = s->shards; sh && ok; sh = sh->next) {
        /* not cleared since the last reset: everything in it is older */
        if (__atomic_load_n(&sh->epoch, __ATOMIC_ACQUIRE) != epoch)
            continue;
        for (unsigned int q = 0; q < s->nqueues && ok; q++) {
            const struct stats_qshard *qs = __atomic_load_n(&sh->q[q],
                                                            __ATOMIC_ACQUIRE);

            if (qs)
                ok = snap_add_qshard(&snap->q[q], qs);
        }
    }
    for (unsigned int q = 0; q < s->nqueues; q++) {
        const struct stats_queue_shared *qs = &s->qs[q];
        int busy = __atomic_load_n(&qs->pool_busy, __ATOMIC_RELAXED);

        snap->q[q].notify_sent =
            span(qs->vc_base.notify_sent,
                 __atomic_load_n(&qs->vc.notify_sent, __ATOMIC_RELAXED));
        snap->q[q].notify_suppressed =
            span(qs->vc_base.notify_suppressed,
                 __atomic_load_n(&qs->vc.notify_suppressed, __ATOMIC_RELAXED));
        snap->q[q].mode_switches = __atomic_load_n(&qs->mode_switches,
                                                   __ATOMIC_RELAXED);
        snap->q[q].pool_busy = busy > 0 ? (unsigned int)busy : 0;
    }
    pthread_mutex_unlock(&s->lock);
    if (!ok) {
        stats_snap_free(snap);
        return NULL;
    }
    /* blocks that exist but were emptied by a reset are not worth a line */
    for (unsigned int q = 0; q < s->nqueues; q++) {
        for (unsigned int m = 0; m < FV_MODE_COUNT; m++) {
            for (unsigned int o = 0; o < STATS_OP_SLOTS; o++) {
                struct stats_op_snap *d = snap->q[q].ops[m][o];

                if (d && !d->count) {
                    free(d);
                    snap->q[q].ops[m][o] = NULL;
                }
            }
        }
    }
    return snap;
}

/* ---- JSON ---- */

/*
 * A growing malloc'd string. Not GString: GLib hands its memory through
 * per-thread GSlice magazines, invisible to ThreadSanitizer, and a control
 * thread's snapshot should not share allocator caches with request threads.
 * An allocation failure sticks (oom) and makes stats_json() return NULL.
 */
struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static bool sbuf_reserve(struct sbuf *b, size_t more)
{
    size_t cap = b->cap ? b->cap : 4096;
    char *p;

    if (b->oom)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    while (cap < b->len + more + 1)
        cap *= 2;
    p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static void sbuf_puts(struct sbuf *b, const char *s)
{
    size_t n = strlen(s);

    if (!sbuf_reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

static void sbuf_putc(struct sbuf *b, char c)
{
    if (!sbuf_reserve(b, 1))
        return;
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
}

static void __attribute__((format(printf, 2, 3)))
sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !sbuf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static const char *const phase_names[STATS_NPHASES] = {
    [STATS_WAIT] = "wait",
    [STATS_SERVICE] = "service",
    [STATS_COMPLETE] = "complete",
    [STATS_TOTAL] = "total",
};

/* {"count":..,"sum<u>":..,"p50<u>":..,...,"max<u>":..,"buckets":[[i,n],..]} */
static void json_histo(struct sbuf *g, const struct stats_histo_snap *h,
                       const char *u)
{
    static const struct {
        const char *key;
        double q;
    } pct[] = {
        { "p50", 0.5 }, { "p90", 0.9 }, { "p99", 0.99 }, { "p999", 0.999 },
    };
    bool first = true;

    sbuf_printf(g, "{\"count\":%" PRIu64 ",\"sum%s\":%" PRIu64,
                           h->count, u, h->sum);
    for (size_t i = 0; i < sizeof(pct) / sizeof(pct[0]); i++)
        sbuf_printf(g, ",\"%s%s\":%" PRIu64, pct[i].key, u,
                               stats_histo_percentile(h, pct[i].q));
    sbuf_printf(g, ",\"max%s\":%" PRIu64 ",\"buckets\":[", u,
                           h->max);
    for (unsigned int i = 0; i < STATS_NBUCKETS; i++) {
        if (!h->b[i])
            continue;
        sbuf_printf(g, "%s[%u,%" PRIu64 "]", first ? "" : ",", i,
                               h->b[i]);
        first = false;
    }
    sbuf_puts(g, "]}");
}

static void json_op(struct sbuf *g, unsigned int slot, unsigned int mode,
                    const struct stats_op_snap *op)
{
    if (slot == STATS_OP_OTHER)
        sbuf_puts(g, "{\"opcode\":\"OTHER\",\"opcode_num\":-1");
    else
        sbuf_printf(g, "{\"opcode\":\"%s\",\"opcode_num\":%u",
                               fuse_opcode_name(slot), slot);
    sbuf_printf(g, ",\"mode\":\"%s\",\"count\":%" PRIu64
                           ",\"errors\":%" PRIu64 ",\"bytes_in\":%" PRIu64
                           ",\"bytes_out\":%" PRIu64,
                           dispatch_mode_name((enum fv_mode)mode), op->count,
                           op->errors, op->bytes_in, op->bytes_out);
    for (unsigned int p = 0; p < STATS_NPHASES; p++) {
        sbuf_printf(g, ",\"%s\":", phase_names[p]);
        json_histo(g, &op->ph[p], "_ns");
    }
    sbuf_putc(g, '}');
}

static void json_queue(struct sbuf *g, unsigned int idx,
                       const struct stats_queue_snap *qs,
                       const struct stats_queue_live *live)
{
    struct stats_queue_live none = { .mode = FV_MODE_INLINE };
    uint64_t requests = 0;
    unsigned int idle;
    bool first = true;

    if (!live)
        live = &none;
    for (unsigned int o = 0; o < STATS_OP_SLOTS; o++) {
        for (unsigned int m = 0; m < FV_MODE_COUNT; m++) {
            if (qs->ops[m][o])
                requests += qs->ops[m][o]->count;
        }
    }
    idle = live->pool_threads > qs->pool_busy ?
           live->pool_threads - qs->pool_busy : 0;
    sbuf_printf(g, "{\"index\":%u,\"role\":\"%s\",\"mode\":\"%s\","
                           "\"pool_size\":%u,\"requests\":%" PRIu64
                           ",\"kicks\":%" PRIu64 ",\"kick_signals\":%" PRIu64
                           ",\"reqs_per_kick\":",
                           idx, idx == 0 ? "hiprio" : "request",
                           dispatch_mode_name(live->mode), live->pool_size,
                           requests, qs->kicks, qs->kick_signals);
    json_histo(g, &qs->reqs_per_kick, "");
    sbuf_printf(g, ",\"inflight\":%u,\"inflight_max\":%u,"
                           "\"notify_sent\":%" PRIu64
                           ",\"notify_suppressed\":%" PRIu64 ",\"pool\":{"
                           "\"sched\":\"%s\",\"threads\":%u,\"busy\":%u,\"idle\":%u,"
                           "\"queued\":%u},\"mode_switches\":%" PRIu64
                           ",\"ops\":[",
                           live->inflight, live->inflight_max,
                           qs->notify_sent, qs->notify_suppressed,
                           fv_pool_sched_name(live->pool_sched),
                           live->pool_threads, qs->pool_busy, idle,
                           live->pool_queued, qs->mode_switches);
    for (unsigned int o = 0; o < STATS_OP_SLOTS; o++) {
        for (unsigned int m = 0; m < FV_MODE_COUNT; m++) {
            if (!qs->ops[m][o])
                continue;
            if (!first)
                sbuf_putc(g, ',');
            json_op(g, o, m, qs->ops[m][o]);
            first = false;
        }
    }
    sbuf_puts(g, "]}");
}

char *stats_json(struct stats *s, const struct stats_live *live)
{
    struct stats_snap *snap = stats_snapshot(s);
    struct sbuf buf = { 0 }, *g = &buf;

    if (!snap)
        return NULL;
    sbuf_printf(g, "{\"schema\":\"virtiofsd-stats\",\"version\":1,"
                           "\"time_ns\":%" PRIu64 ",\"since_reset_ns\":%" PRIu64
                           ",\"stats_enabled\":%s,\"histogram\":{"
                           "\"sub_buckets\":%u,\"nbuckets\":%u,\"borders\":[",
                           snap->time_ns, snap->since_reset_ns,
                           live->enabled ? "true" : "false", STATS_SUB_BUCKETS,
                           STATS_NBUCKETS);
    for (unsigned int i = 0; i < STATS_NBUCKETS; i++)
        sbuf_printf(g, "%s%" PRIu64, i ? "," : "",
                               stats_bucket_lower(i));
    sbuf_printf(g, "]},\"side_pool\":{\"threads\":%u,\"queued\":%u},"
                           "\"queues\":[", live->side_threads,
                           live->side_queued);
    for (unsigned int q = 0; q < snap->nqueues; q++) {
        if (q)
            sbuf_putc(g, ',');
        json_queue(g, q, &snap->q[q], q < live->nqueues ? &live->q[q] : NULL);
    }
    sbuf_puts(g, "]}");
    stats_snap_free(snap);
    if (buf.oom) {
        free(buf.p);
        return NULL;
    }
    return buf.p;
}
