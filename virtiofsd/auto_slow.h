/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * auto's threshold (dispatch.h, "auto"): the average inline run time, in
 * microseconds, from which a queue's waiting requests go to its pool.
 * --auto-slow-us at start, "auto slow" on the control socket live, per
 * queue. Header-only: the option parser, the control socket, virtiofsctl
 * and the transport share the bounds and the parser.
 */
#ifndef VFS_AUTO_SLOW_H
#define VFS_AUTO_SLOW_H

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

/* About twice the pool's hand-off on a quiet CPU (STATS.md "Pool
 * hand-off": 12-16 us VM-less; a TCG guest's is 33-50 us). */
#define FV_AUTO_SLOW_DEFAULT_US 25u
#define FV_AUTO_SLOW_MIN_US 1u
#define FV_AUTO_SLOW_MAX_US 1000000u

/* @us within the bounds */
static inline bool fv_auto_slow_ok(unsigned long us)
{
    return us >= FV_AUTO_SLOW_MIN_US && us <= FV_AUTO_SLOW_MAX_US;
}

/* A decimal number of microseconds in the bounds: 0, else -EINVAL. */
static inline int fv_auto_slow_parse(const char *s, unsigned int *us)
{
    unsigned long v;
    char *end;

    if (!s || s[0] < '0' || s[0] > '9')
        return -EINVAL;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (*end || errno || !fv_auto_slow_ok(v))
        return -EINVAL;
    *us = (unsigned int)v;
    return 0;
}

#endif
