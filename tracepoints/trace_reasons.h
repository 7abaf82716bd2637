/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Numeric codes carried by trace events (tracepoints/trace-events). Probe
 * arguments are integers only, so a reason is a number; README.md has the
 * same tables for people reading bpftrace output. Values are ABI for
 * scripts: append, never renumber.
 */
#ifndef VFS_TRACE_REASONS_H
#define VFS_TRACE_REASONS_H

/* vu_msg_rejected.reason */
enum trace_vu_reject {
    TRACE_VU_REJECT_RECV = 1,       /* payload too large or too many fds */
    TRACE_VU_REJECT_INVALID = 2,    /* failed vu_msg_validate() */
    TRACE_VU_REJECT_HANDLER = 3,    /* the request's handler failed */
};

/* vq_broken.reason */
enum trace_vq_broken {
    TRACE_VQ_AVAIL_IDX = 1,         /* avail->idx moved more than num ahead */
    TRACE_VQ_HEAD_RANGE = 2,        /* avail ring entry >= num */
    TRACE_VQ_CHAIN_LOOP = 3,        /* chain loops or is longer than its table */
    TRACE_VQ_INDIRECT_BAD = 4,      /* indirect: not negotiated, nested, NEXT, bad length */
    TRACE_VQ_INDIRECT_OUTSIDE = 5,  /* indirect table outside guest memory */
    TRACE_VQ_READ_AFTER_WRITE = 6,  /* readable descriptor after a writable one */
    TRACE_VQ_CHAIN_TOO_LONG = 7,    /* more than VQ_MAX_IOV buffers */
    TRACE_VQ_BUFFER_OUTSIDE = 8,    /* buffer outside guest memory */
    TRACE_VQ_NEXT_RANGE = 9,        /* next index >= table size */
    TRACE_VQ_PUSH_HEAD = 10,        /* device pushed a head >= num (our bug) */
    TRACE_VQ_UNCONFIGURED = 11,     /* pop on a ring that is not set up */
};

/* queue_broken.reason */
enum trace_queue_broken {
    TRACE_QUEUE_RING = 1,           /* vq_pop failed: see vq_broken */
    TRACE_QUEUE_POLL = 2,           /* poll() on the kick fd failed */
    TRACE_QUEUE_KICK_READ = 3,      /* the kick eventfd could not be read */
    TRACE_QUEUE_KICK_ERROR = 4,     /* POLLERR/POLLHUP/POLLNVAL on the kick fd */
};

/* req_rejected.reason */
enum trace_req_reject {
    TRACE_REQ_TOO_BIG = 1,          /* readable part above FV_MAX_IN_SIZE */
    TRACE_REQ_INVALID = 2,          /* fv_validate_request_ex() refused it */
    TRACE_REQ_NO_SESSION = 3,       /* before INIT or after DESTROY */
    TRACE_REQ_REVALIDATE = 4,       /* invalid under the layouts INIT chose */
    TRACE_REQ_NO_MEMORY = 5,        /* no memory for the request: chain returned empty */
};

#endif
