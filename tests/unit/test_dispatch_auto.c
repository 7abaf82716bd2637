/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_dispatch_auto: the auto policy's rule and its bookkeeping, without
 * threads. The rule: inline unless the queue is DISPATCH_AUTO_MIN_DEPTH
 * deep and inline runs average the queue's threshold or more (default
 * DISPATCH_AUTO_SLOW_NS, settable per queue in bounds); one pool
 * choice in DISPATCH_AUTO_PROBE_EVERY runs inline instead (a fresh sample);
 * the average moves by 1/8 of each sample, a sample counting for at most
 * 4x the average (2x the threshold if more); runs are measured 1 in
 * SAMPLE_EVERY while fast, all while slow, as wall time with several CPUs
 * and off-CPU time with one. Also: auto is accepted as a
 * queue mode at init and by the live switch, and named "auto"; the side
 * mode is not a queue mode.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dispatch.h"

static int failures;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);  \
            failures++;                                                      \
        }                                                                    \
    } while (0)

static void never_run(struct fv_req *req, enum fv_mode mode)
{
    (void)req;
    (void)mode;
    failures++;
}

static void test_rule(void)
{
    const uint64_t slow = DISPATCH_AUTO_SLOW_NS, fast = slow - 1;

    /* depth 0 and 1: nothing to overlap with, whatever the average */
    CHECK(dispatch_auto_rule(0, slow * 100, slow, false) == FV_MODE_INLINE);
    CHECK(dispatch_auto_rule(1, slow * 100, slow, false) == FV_MODE_INLINE);
    /* deep but fast: the hand-off would cost more than it saves */
    CHECK(dispatch_auto_rule(DISPATCH_AUTO_MIN_DEPTH, fast, slow, false) == FV_MODE_INLINE);
    CHECK(dispatch_auto_rule(1000, 0, slow, false) == FV_MODE_INLINE);
    /* deep and slow: the pool */
    CHECK(dispatch_auto_rule(DISPATCH_AUTO_MIN_DEPTH, slow, slow, false) == FV_MODE_POOL);
    CHECK(dispatch_auto_rule(64, slow * 10, slow, false) == FV_MODE_POOL);
    /* a due probe runs inline */
    CHECK(dispatch_auto_rule(64, slow * 10, slow, true) == FV_MODE_INLINE);
    /* the threshold is the caller's: the same average on either side */
    CHECK(dispatch_auto_rule(64, 5000, 4000, false) == FV_MODE_POOL);
    CHECK(dispatch_auto_rule(64, 5000, 6000, false) == FV_MODE_INLINE);
}

/* a queue's threshold, set live: bounds, per queue, and the choice moves */
static void test_threshold(void)
{
    struct dispatch d;
    uint64_t avg, ci, cp;

    CHECK(dispatch_init(&d, 2, FV_MODE_AUTO, 4, FV_POOL_SCHED_NORMAL, never_run) == 0);
    CHECK(dispatch_get_auto_slow(&d, 0) == DISPATCH_AUTO_SLOW_NS);
    CHECK(dispatch_get_auto_slow(&d, 1) == DISPATCH_AUTO_SLOW_NS);
    CHECK(dispatch_set_auto_slow(&d, 1, 0) == -EINVAL);
    CHECK(dispatch_set_auto_slow(&d, 1, FV_AUTO_SLOW_MAX_US + 1) == -EINVAL);
    CHECK(dispatch_set_auto_slow(&d, 2, 10) == -EINVAL);
    CHECK(dispatch_get_auto_slow(&d, 1) == DISPATCH_AUTO_SLOW_NS);
    /* 10 us: a 15 us average is slow here, fast on the default queue */
    CHECK(dispatch_set_auto_slow(&d, 1, 10) == 0);
    CHECK(dispatch_get_auto_slow(&d, 1) == 10000);
    CHECK(dispatch_get_auto_slow(&d, 0) == DISPATCH_AUTO_SLOW_NS);
    dispatch_auto_sample(&d, 0, 15000);
    dispatch_auto_sample(&d, 1, 15000);
    CHECK(dispatch_auto_choose(&d, 0, 8) == FV_MODE_INLINE);
    CHECK(dispatch_auto_choose(&d, 1, 8) == FV_MODE_POOL);
    /* raised to the maximum: inline again, the average kept */
    CHECK(dispatch_set_auto_slow(&d, 1, FV_AUTO_SLOW_MAX_US) == 0);
    CHECK(dispatch_auto_choose(&d, 1, 8) == FV_MODE_INLINE);
    dispatch_auto_get(&d, 1, &avg, &ci, &cp);
    CHECK(avg == 15000 && ci == 1 && cp == 1);
    /* a sample's cap follows the threshold: max(4 x average, 2 x 25 us)
     * on the default queue, 2 x 1 s here */
    dispatch_auto_sample(&d, 0, 1000000000);
    dispatch_auto_get(&d, 0, &avg, &ci, &cp);
    CHECK(avg == 15000 + (60000 - 15000) / 8);
    dispatch_auto_sample(&d, 1, 1000000000);
    dispatch_auto_get(&d, 1, &avg, &ci, &cp);
    CHECK(avg == 15000 + (1000000000 - 15000) / 8);
    dispatch_destroy(&d);
}

static void test_choose(void)
{
    struct dispatch d;
    enum fv_mode m;
    unsigned int size;
    uint64_t avg, ci, cp;
    unsigned int pool = 0, inl = 0;

    CHECK(dispatch_init(&d, 2, FV_MODE_SIDE, 4, FV_POOL_SCHED_NORMAL, never_run) == -EINVAL);
    CHECK(dispatch_init(&d, 2, FV_MODE_AUTO, 4, FV_POOL_SCHED_NORMAL, never_run) == 0);
    CHECK(dispatch_batch_mode(&d, 1) == FV_MODE_AUTO);
    CHECK(!strcmp(dispatch_mode_name(FV_MODE_AUTO), "auto"));
    CHECK(dispatch_get_mode(&d, 1, &m, &size) == 0 && m == FV_MODE_AUTO && size == 4);
    CHECK(dispatch_set_mode(&d, 1, FV_MODE_SIDE, 4) == -EINVAL);
    CHECK(dispatch_set_mode(&d, 1, FV_MODE_INLINE, 4) == 0);
    CHECK(dispatch_set_mode(&d, 1, FV_MODE_AUTO, 8) == 0);
    CHECK(dispatch_get_mode(&d, 1, &m, &size) == 0 && m == FV_MODE_AUTO && size == 8);

    /* no sample yet: inline even when deep */
    CHECK(dispatch_auto_choose(&d, 1, 16) == FV_MODE_INLINE);
    /* the first sample is the average; then 1/8 steps */
    dispatch_auto_sample(&d, 1, 200000);
    dispatch_auto_get(&d, 1, &avg, &ci, &cp);
    CHECK(avg == 200000 && ci == 1 && cp == 0);
    dispatch_auto_sample(&d, 1, 0);
    dispatch_auto_get(&d, 1, &avg, &ci, &cp);
    CHECK(avg == 175000);
    dispatch_auto_sample(&d, 1, 375000);
    dispatch_auto_get(&d, 1, &avg, &ci, &cp);
    CHECK(avg == 200000);

    /* slow and deep: the pool, with one probe in every PROBE_EVERY */
    for (unsigned int i = 0; i < 4 * DISPATCH_AUTO_PROBE_EVERY; i++) {
        if (dispatch_auto_choose(&d, 1, 8) == FV_MODE_POOL)
            pool++;
        else
            inl++;
    }
    CHECK(inl == 4 && pool == 4 * (DISPATCH_AUTO_PROBE_EVERY - 1));
    /* depth 1 is inline and is not a probe */
    CHECK(dispatch_auto_choose(&d, 1, 1) == FV_MODE_INLINE);
    dispatch_auto_get(&d, 1, &avg, &ci, &cp);
    CHECK(ci == 1 + 4 + 1 && cp == pool);
    /* the other queue has its own state */
    dispatch_auto_get(&d, 0, &avg, &ci, &cp);
    CHECK(avg == 0 && ci == 0 && cp == 0);
    dispatch_auto_get(&d, 99, &avg, &ci, &cp);
    CHECK(avg == 0 && ci == 0 && cp == 0);

    /* requests get fast (the files are cached now): back to inline */
    for (unsigned int i = 0; i < 40; i++)
        dispatch_auto_sample(&d, 1, 3000);
    dispatch_auto_get(&d, 1, &avg, &ci, &cp);
    CHECK(avg < DISPATCH_AUTO_SLOW_NS);
    CHECK(dispatch_auto_choose(&d, 1, 64) == FV_MODE_INLINE);
    /* one preempted request (10 ms) does not make the queue slow ... */
    dispatch_auto_sample(&d, 1, 10000000);
    dispatch_auto_get(&d, 1, &avg, &ci, &cp);
    CHECK(avg < DISPATCH_AUTO_SLOW_NS);
    CHECK(dispatch_auto_choose(&d, 1, 64) == FV_MODE_INLINE);
    /* ... a run of slow ones does, within a few samples */
    {
        unsigned int k = 0;

        while (k < 20 && dispatch_auto_choose(&d, 1, 64) == FV_MODE_INLINE) {
            dispatch_auto_sample(&d, 1, 150000);
            k++;
        }
        CHECK(k >= 2 && k <= 10);
    }
    /* a sample of 0 ns keeps an average (never "no sample" again) */
    for (unsigned int i = 0; i < 200; i++)
        dispatch_auto_sample(&d, 1, 0);
    dispatch_auto_get(&d, 1, &avg, &ci, &cp);
    CHECK(avg >= 1);
    dispatch_destroy(&d);
}

static void spin_us(unsigned int us)
{
    struct timespec t0, t;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000L + (t.tv_nsec - t0.tv_nsec) / 1000 < (long)us);
}

/* The average after one measured 2 ms run (busy, or asleep) of a fresh
 * queue @q. */
static uint64_t first_sample(struct dispatch *d, unsigned int q, bool sleep)
{
    struct dispatch_auto_clock c;
    uint64_t avg, ci, cp;

    d->q[q].autop.inline_ns = 0;
    d->q[q].autop.tick = DISPATCH_AUTO_SAMPLE_EVERY - 1;
    dispatch_auto_begin(d, q, &c);
    if (sleep)
        usleep(2000);
    else
        spin_us(2000);
    dispatch_auto_end(d, q, &c);
    dispatch_auto_get(d, q, &avg, &ci, &cp);
    return avg;
}

/* dispatch_auto_begin/end: 1 in SAMPLE_EVERY runs measured while fast,
 * every run while slow; wall time with several CPUs, off-CPU with one. */
static void test_measure(void)
{
    struct dispatch d;
    struct dispatch_auto_clock c;
    uint64_t avg, ci, cp;
    unsigned int on = 0;

    CHECK(dispatch_init(&d, 2, FV_MODE_AUTO, 4, FV_POOL_SCHED_NORMAL, never_run) == 0);
    CHECK(d.cpus >= 1);
    for (unsigned int i = 0; i < 8 * DISPATCH_AUTO_SAMPLE_EVERY; i++) {
        dispatch_auto_begin(&d, 1, &c);
        on += c.on;
        dispatch_auto_end(&d, 1, &c);
    }
    CHECK(on == 8);
    dispatch_auto_get(&d, 1, &avg, &ci, &cp);
    CHECK(avg > 0 && avg < DISPATCH_AUTO_SLOW_NS);

    /* several CPUs: a 2 ms busy run is slow (wall time) */
    d.cpus = 2;
    CHECK(first_sample(&d, 0, false) >= 2000000);
    /* ... and now every run is measured */
    dispatch_auto_begin(&d, 0, &c);
    CHECK(c.on);
    dispatch_auto_end(&d, 0, &c);

    /* one CPU: the busy run is on-CPU (not slow), a sleeping one is */
    d.cpus = 1;
    CHECK(first_sample(&d, 1, false) < 1000000);
    CHECK(first_sample(&d, 1, true) >= 1500000);
    dispatch_destroy(&d);
}

int main(void)
{
    test_rule();
    test_choose();
    test_threshold();
    test_measure();
    if (failures)
        fprintf(stderr, "%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
