/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Scheduling policy of a thread while it runs a queue's pool requests
 * (--pool-sched, "pool sched" on the control socket; STATS.md "Pool
 * threads' policy"). Header-only: the option parser and the transport
 * share the names.
 *
 *   normal  SCHED_OTHER (default): a woken worker may preempt the thread
 *           running on its CPU, the queue thread or a vCPU thread
 *   batch   SCHED_BATCH: a woken worker does not preempt; the queue thread
 *           finishes its batch first, but a vCPU thread does too
 */
#ifndef VFS_POOL_SCHED_H
#define VFS_POOL_SCHED_H

#include <errno.h>
#include <string.h>

enum fv_pool_sched {
    FV_POOL_SCHED_NORMAL = 0,   /* the default */
    FV_POOL_SCHED_BATCH = 1,
    FV_POOL_SCHED_COUNT
};

static inline const char *fv_pool_sched_name(enum fv_pool_sched sched)
{
    switch (sched) {
    case FV_POOL_SCHED_NORMAL:
        return "normal";
    case FV_POOL_SCHED_BATCH:
        return "batch";
    default:
        return "unknown";
    }
}

/* 0, or -EINVAL for anything but "batch" and "normal" */
static inline int fv_pool_sched_parse(const char *s, enum fv_pool_sched *sched)
{
    for (int i = 0; i < FV_POOL_SCHED_COUNT; i++) {
        if (!strcmp(s, fv_pool_sched_name((enum fv_pool_sched)i))) {
            *sched = (enum fv_pool_sched)i;
            return 0;
        }
    }
    return -EINVAL;
}

#endif
