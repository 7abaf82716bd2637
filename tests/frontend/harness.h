/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Shared setup for the frontend-driven tests: pick the daemon, make a
 * scratch share, spawn the daemon, start the device, send FUSE_INIT.
 *
 * Daemon selection: --daemon PATH, else $VUF_DAEMON, else Debian's upstream
 * /usr/lib/qemu/virtiofsd.  --pool N / $VUF_POOL: --thread-pool-size
 * (default 0).  --queues N / $VUF_QUEUES: request queues (upstream: 1).
 * --fd / $VUF_FD=1: hand the daemon a connected socketpair end with --fd=N
 * (our daemon) instead of a socket path.  $VUF_EXTRA_ARGS: more daemon
 * arguments, blank-separated (e.g. "-o xattr -o posix_lock").
 */
#ifndef FRONTEND_HARNESS_H
#define FRONTEND_HARNESS_H

#include <stdbool.h>
#include <stdio.h>

#include "fuse_client.h"
#include "vufront.h"

#define T_PASS 0
#define T_FAIL 1
#define T_SKIP 77

struct harness {
    const char *daemon;
    unsigned pool;
    unsigned queues;
    bool use_fd;
    bool upstream;
    char dir[256];      /* scratch root: share/ and the socket live here */
    char share[300];
    char sock[300];
    char log[300];
    vuf_daemon *dmn;
    vuf_dev *dev;
    fc *c;
    fc_chan *hiprio;
    fc_chan *req;       /* request queue 1 */
    struct fuse_init_out init;
    bool allow_exit_failure;  /* hostile tests: the daemon may bail out */
    char extra_args[512];     /* $VUF_EXTRA_ARGS, split in place into argv words */
};
#define HARNESS_MAX_EXTRA_ARGS 16

/* Parses args/env, creates the share, starts everything.  Returns T_PASS,
 * T_SKIP (no daemon binary) or T_FAIL. */
int harness_start(struct harness *h, int argc, char **argv, const struct vuf_opts *o);
/* Disconnects, checks the daemon exits, removes the scratch directory.
 * Returns T_FAIL if the daemon did not exit cleanly within 10 s. */
int harness_stop(struct harness *h);
/* Copy of the daemon log to stderr (on failure). */
void harness_dump_log(struct harness *h);
/* A sanitizer report (ASan, LSan, TSan, UBSan) in the daemon log: UBSan
 * and a report in a forked child need not change the exit status. */
bool harness_log_has_sanitizer_report(const struct harness *h);

extern int t_failures;
#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);   \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
            t_failures++;                                                     \
        }                                                                     \
    } while (0)
#define CHECK_EQ(a, b)                                                        \
    CHECK((long long)(a) == (long long)(b), "%s = %lld, %s = %lld", #a,       \
          (long long)(a), #b, (long long)(b))

#endif
