/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * probe-bench: what the daemon's probes cost, without the noise of a whole
 * request. Runs the probe sequence of one request (req_popped, req_sizes,
 * req_start, req_reply, notify_sent, req_done: the events every request
 * fires, with the daemon's argument set-up) in a tight loop and prints
 * ns per request, and a loop of req_done alone (ns per hit).
 *
 *   trace-probe-bench [--iterations=N] [--wait-attach]
 *
 * Build it in two build dirs (-Dtrace_backends=nop and the default) and
 * compare: the difference is the disabled probes' cost per request. With
 * --wait-attach it waits until a tracer enables req_done, e.g.
 *   bpftrace -e 'usdt:BUILD/tracepoints/trace-probe-bench:vfs:req_done
 *                { @ = count(); }'
 * and the req_done loop then measures the cost of one hit with BPF
 * attached. A benchmark prints numbers; nothing here is a test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "trace_events.h"

#define REPEATS 7

/* What a request carries; volatile so the loop cannot be folded away. */
struct fake_req {
    uint32_t queue, head, opcode, mode, len;
    int32_t error;
    uint64_t unique, nodeid, rd_len, wr_len;
    uint64_t t_pop, t_start, t_reply, t_done;
};

static volatile struct fake_req vreq = {
    .queue = 1, .head = 7, .opcode = 15, .mode = 0, .len = 4112,
    .unique = 1000, .nodeid = 2, .rd_len = 80, .wr_len = 4112,
    .t_pop = 100, .t_start = 200, .t_reply = 900, .t_done = 1000,
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The probe sites of fuse_virtio.c for one request, in order. */
static void request_probes(uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        trace_req_popped(vreq.queue, vreq.head, vreq.unique + i, vreq.opcode,
                         vreq.nodeid);
        trace_req_sizes(vreq.queue, vreq.unique + i, vreq.rd_len, vreq.wr_len);
        trace_req_start(vreq.queue, vreq.unique + i, vreq.mode,
                        trace_thread_id());
        trace_req_reply(vreq.queue, vreq.unique + i, vreq.error, vreq.len);
        trace_notify_sent(vreq.queue, vreq.unique + i);
        trace_req_done(vreq.queue, vreq.unique + i, vreq.opcode,
                       vreq.t_start - vreq.t_pop, vreq.t_reply - vreq.t_start,
                       vreq.t_done - vreq.t_pop);
        __asm__ __volatile__("" ::: "memory");
    }
}

static void done_probe(uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        trace_req_done(vreq.queue, vreq.unique + i, vreq.opcode,
                       vreq.t_start - vreq.t_pop, vreq.t_reply - vreq.t_start,
                       vreq.t_done - vreq.t_pop);
        __asm__ __volatile__("" ::: "memory");
    }
}

/* Best of REPEATS runs: the least disturbed by the rest of the machine. */
static double best_ns_per_iter(void (*fn)(uint64_t), uint64_t n)
{
    double best = 0;

    for (int r = 0; r < REPEATS; r++) {
        uint64_t t0 = now_ns();
        double ns;

        fn(n);
        ns = (double)(now_ns() - t0) / (double)n;
        if (r == 0 || ns < best)
            best = ns;
    }
    return best;
}

int main(int argc, char **argv)
{
    uint64_t n = 20 * 1000 * 1000;
    bool wait_attach = false;

    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "--iterations=", 13)) {
            n = strtoull(argv[i] + 13, NULL, 10);
        } else if (!strcmp(argv[i], "--wait-attach")) {
            wait_attach = true;
        } else {
            fprintf(stderr, "usage: %s [--iterations=N] [--wait-attach]\n",
                    argv[0]);
            return 2;
        }
    }
    if (!n)
        n = 1;
    if (wait_attach) {
        printf("pid %d: waiting for a tracer on vfs:req_done...\n", getpid());
        fflush(stdout);
        for (int i = 0; i < 6000 && !trace_event_req_done_enabled(); i++)
            usleep(10 * 1000);
        if (!trace_event_req_done_enabled()) {
            fprintf(stderr, "no tracer attached within 60 s\n");
            return 1;
        }
        sleep(1);   /* let the tracer finish attaching */
    }
    printf("backends %s, %llu iterations, best of %d\n", trace_backends(),
           (unsigned long long)n, REPEATS);
    printf("request probes (6 events): %.2f ns per request\n",
           best_ns_per_iter(request_probes, n));
    printf("req_done alone (%s): %.2f ns per hit\n",
           trace_event_req_done_enabled() ? "enabled" : "disabled",
           best_ns_per_iter(done_probe, n));
    return 0;
}
