/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Scheduling policy of a thread while it runs a queue's pool requests
 * (--pool-sched, "pool sched" on the control socket; STATS.md "Pool
 * threads' policy"). Header-only: the option parser and the transport
 * share the names.
 *
 *   batch   SCHED_BATCH: a worker woken by the queue thread does not
 *           preempt it, so the queue thread finishes its batch and sleeps
 *           first
 *   normal  SCHED_OTHER: the worker may preempt the thread that woke it
 */
#ifndef VFS_POOL_SCHED_H
#define VFS_POOL_SCHED_H

#include <errno.h>
#include <string.h>

enum fv_pool_sched {
    FV_POOL_SCHED_BATCH = 0,
    FV_POOL_SCHED_NORMAL = 1,
    FV_POOL_SCHED_COUNT
};

static inline const char *fv_pool_sched_name(enum fv_pool_sched sched)
{
    switch (sched) {
    case FV_POOL_SCHED_BATCH:
        return "batch";
    case FV_POOL_SCHED_NORMAL:
        return "normal";
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
