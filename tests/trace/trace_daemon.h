/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Shared by the tests that run the daemon (tests/trace): start it with
 * extra arguments on a scratch share through the userspace frontend, drive
 * a fixed FUSE workload with known per-opcode counts, stop it.
 */
#ifndef TRACE_DAEMON_H
#define TRACE_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "fuse_client.h"
#include "vufront.h"

#define T_PASS 0
#define T_FAIL 1
#define T_SKIP 77

struct tdaemon {
    char dir[64];
    char share[128];
    char sock[128];
    char log[128];
    vuf_daemon *dmn;
    vuf_dev *dev;
    fc *c;
    fc_chan *hiprio;
    fc_chan *req;
};

/*
 * Start @daemon with --thread-pool-size=@pool, -o source=<scratch> and the
 * NULL-terminated @extra arguments, connect, start the device and send
 * FUSE_INIT. Returns T_PASS or T_FAIL (with the daemon log on stderr).
 */
int tdaemon_start(struct tdaemon *t, const char *daemon, unsigned int pool,
                  const char *const *extra);
/*
 * The process that serves the device: the daemon itself, or the child the
 * namespace sandbox forked (which is where the probes fire).
 */
pid_t tdaemon_serving_pid(struct tdaemon *t);
/* Disconnect, wait for the daemon to exit 0, keep the log. T_PASS/T_FAIL. */
int tdaemon_stop(struct tdaemon *t);
/* Remove the scratch directory (after reading the log). */
void tdaemon_cleanup(struct tdaemon *t);
void tdaemon_dump_log(const struct tdaemon *t);

/* The workload: how many requests of each opcode it sends. */
struct tload_count {
    uint32_t opcode;
    unsigned int n;
    unsigned int queue;         /* 0 hiprio, 1 request queue */
};
extern const struct tload_count tload_counts[];
extern const unsigned int tload_nopcodes;

/*
 * Create a file, write, read, getattr, lookup, flush, release it, forget
 * it on hiprio: exactly tload_counts. Returns 0 or -errno.
 */
int tload_run(struct tdaemon *t);

#endif
