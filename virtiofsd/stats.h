/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Per-request counters of the device layer (DESIGN.md "Counters";
 * the exported schema is documented in STATS.md).
 *
 * Keyed by queue x opcode x mode the request ran in: count, errors, bytes,
 * and one log-linear histogram per phase (wait, service, complete, total).
 * Per queue: kicks, requests per kick, notifications sent/suppressed, mode
 * switches, pool workers busy.
 *
 * Hot path takes no lock. Every thread that records gets its own shard
 * (found through a thread-local pointer; registered under a mutex the first
 * time); only that thread writes it, with relaxed atomic loads and stores,
 * so readers summing all shards concurrently are race-free (and TSan-clean)
 * without making writers pay for locked instructions. A reset bumps an
 * epoch: each writer clears its own shard when it next sees the new epoch,
 * readers ignore shards still in an older one. Shards live until
 * stats_free().
 *
 * Histogram: values below 8 have a bucket each; above, every power of two
 * [2^e, 2^(e+1)) is split in 8 equal sub-buckets, so a bucket is at most
 * 12.5 % wider than its lower border. Values >= 2^40 (about 18 minutes in
 * ns) share the last bucket; max is kept exactly.
 */
#ifndef VFS_STATS_H
#define VFS_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include "fuse_validate.h"
#include "fuse_virtio.h"

struct vq_counters;

#define STATS_SUB_BITS 3
#define STATS_SUB_BUCKETS (1u << STATS_SUB_BITS)
#define STATS_MAX_EXP 39        /* last power of two with its own buckets */
#define STATS_NBUCKETS ((STATS_MAX_EXP - STATS_SUB_BITS + 2) * STATS_SUB_BUCKETS)

/* Opcode slots: one per opcode below FV_OPCODE_MAX, one for the rest. */
#define STATS_OP_OTHER FV_OPCODE_MAX
#define STATS_OP_SLOTS (FV_OPCODE_MAX + 1)

enum stats_phase {
    STATS_WAIT,         /* t_start - t_pop: handoff to the runner */
    STATS_SERVICE,      /* t_reply - t_start: libfuse + filesystem */
    STATS_COMPLETE,     /* t_done - t_reply: copy-out, push, notify */
    STATS_TOTAL,        /* t_done - t_pop */
    STATS_NPHASES
};

/* ---- histogram arithmetic (exposed for tests and clients) ---- */

unsigned int stats_bucket(uint64_t v);
/* Smallest value of bucket @idx. */
uint64_t stats_bucket_lower(unsigned int idx);
/* Largest value of bucket @idx (UINT64_MAX for the last one). */
uint64_t stats_bucket_upper(unsigned int idx);

/* A summed histogram (plain memory, owned by a reader). */
struct stats_histo_snap {
    uint64_t count;
    uint64_t sum;
    uint64_t max;
    uint64_t b[STATS_NBUCKETS];
};

void stats_histo_snap_add(struct stats_histo_snap *h, uint64_t v);
/*
 * Value at rank ceil(q * count) (q in (0, 1]): the largest value of the
 * bucket holding that sample, never more than max; 0 for an empty one.
 * At least a fraction q of the samples are <= the result.
 */
uint64_t stats_histo_percentile(const struct stats_histo_snap *h, double q);

/* ---- the counters of one device ---- */

struct stats;

/* @nqueues: queues of the device (hiprio + request queues). */
struct stats *stats_new(unsigned int nqueues);
void stats_free(struct stats *s);

/* Hot path: @req, from queue @qidx, is finished (fv_req_finish). */
void stats_record_req(struct stats *s, unsigned int qidx,
                      const struct fv_req *req);
/*
 * Hot path, queue thread: one wakeup by the kick eventfd, which carried
 * @signals guest notifications, and the @nreqs chains popped after it.
 */
void stats_record_kick(struct stats *s, unsigned int qidx, uint64_t signals,
                       unsigned int nreqs);
/* Pool workers of @qidx running a request: +1 when one starts, -1 after. */
void stats_pool_busy(struct stats *s, unsigned int qidx, int delta);
void stats_mode_switch(struct stats *s, unsigned int qidx);
/* Where the queue's virtqueue counts its notifications (vq_set_counters). */
struct vq_counters *stats_vq_counters(struct stats *s, unsigned int qidx);

void stats_reset(struct stats *s);

/* ---- snapshots ---- */

struct stats_op_snap {
    uint64_t count;
    uint64_t errors;
    uint64_t bytes_in;
    uint64_t bytes_out;
    struct stats_histo_snap ph[STATS_NPHASES];
};

struct stats_queue_snap {
    uint64_t kicks;             /* wakeups by the kick eventfd */
    uint64_t kick_signals;      /* guest notifications they carried */
    struct stats_histo_snap reqs_per_kick;
    uint64_t notify_sent;
    uint64_t notify_suppressed;
    uint64_t mode_switches;
    unsigned int pool_busy;
    /* NULL where nothing was recorded */
    struct stats_op_snap *ops[FV_MODE_COUNT][STATS_OP_SLOTS];
};

struct stats_snap {
    uint64_t time_ns;           /* CLOCK_MONOTONIC when taken */
    uint64_t since_reset_ns;    /* since stats_new() or the last reset */
    unsigned int nqueues;
    struct stats_queue_snap *q; /* [nqueues] */
};

/* Sum of every shard, consistent per counter, safe while requests run. */
struct stats_snap *stats_snapshot(struct stats *s);
void stats_snap_free(struct stats_snap *snap);

/* ---- JSON (STATS.md) ---- */

/* What only the device layer knows, per queue, at snapshot time. */
struct stats_queue_live {
    enum fv_mode mode;
    unsigned int pool_size;
    unsigned int inflight;
    unsigned int inflight_max;
    unsigned int pool_threads;  /* threads the pool runs now */
    unsigned int pool_queued;   /* requests waiting for a pool thread */
    enum fv_pool_sched pool_sched;
};

struct stats_live {
    bool enabled;
    unsigned int nqueues;
    const struct stats_queue_live *q;   /* [nqueues] */
    unsigned int side_threads;
    unsigned int side_queued;
};

/* malloc'd one-line JSON object; NULL if out of memory. */
char *stats_json(struct stats *s, const struct stats_live *live);

#endif
