/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Pool threads' scheduling policy (--pool-sched, "pool sched" on the
 * control socket; STATS.md "Pool threads' policy").
 *
 * The daemon runs in pool mode; after each phase of requests the test
 * reads every thread of the serving process from /proc: the pool threads
 * that ran requests in the phase (their voluntary context switches grew)
 * must all run under the phase's policy (SCHED_BATCH = 3, SCHED_OTHER = 0),
 * and the queue thread (vfs-vq1) stays SCHED_OTHER. Phases: the default
 * (normal), "pool sched batch", "pool sched normal" on one queue, and a
 * daemon started with --pool-sched=batch. The answers of "mode get", "pool
 * sched" and "stats" must name the policy; bad arguments are refused.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_harness.h"

#define POLICY_OTHER 0
#define POLICY_BATCH 3
#define MAX_THREADS 256
#define PHASE_REQS 400

struct thr {
    int tid;
    char comm[32];
    int policy;
    long vcsw;          /* voluntary_ctxt_switches */
};

static int read_file(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -errno;
    n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    return 0;
}

static int read_threads(int pid, struct thr *t, int max)
{
    char path[128], buf[2048];
    struct dirent *de;
    DIR *d;
    int n = 0;

    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    d = opendir(path);
    if (!d)
        return -errno;
    while ((de = readdir(d)) && n < max) {
        char *p, *s;
        int field;

        if (de->d_name[0] == '.')
            continue;
        t[n].tid = atoi(de->d_name);
        snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, t[n].tid);
        if (read_file(path, buf, sizeof(buf)) < 0)
            continue;           /* exited meanwhile */
        p = strchr(buf, '(');
        s = strrchr(buf, ')');
        if (!p || !s)
            continue;
        snprintf(t[n].comm, sizeof(t[n].comm), "%.*s", (int)(s - p - 1),
                 p + 1);
        /* fields after the comm start at 3 (state); policy is field 41 */
        field = 2;
        t[n].policy = -1;
        for (char *tok = strtok(s + 1, " "); tok; tok = strtok(NULL, " ")) {
            if (++field == 41) {
                t[n].policy = atoi(tok);
                break;
            }
        }
        snprintf(path, sizeof(path), "/proc/%d/task/%d/status", pid,
                 t[n].tid);
        if (read_file(path, buf, sizeof(buf)) < 0)
            continue;
        p = strstr(buf, "\nvoluntary_ctxt_switches:");
        t[n].vcsw = p ? atol(p + strlen("\nvoluntary_ctxt_switches:")) : -1;
        n++;
    }
    closedir(d);
    return n;
}

static const struct thr *find_tid(const struct thr *t, int n, int tid)
{
    for (int i = 0; i < n; i++)
        if (t[i].tid == tid)
            return &t[i];
    return NULL;
}

/* PHASE_REQS GETATTRs of the root, 8 in flight, on queue 1. */
static void run_requests(struct ch *h)
{
    fc_chan *q1 = fc_chan_get(h->c, 1);
    struct fuse_getattr_in gi = { 0 };
    struct fc_call call = {
        .opcode = FUSE_GETATTR, .nodeid = FUSE_ROOT_ID,
        .arg = &gi, .arg_len = sizeof(gi),
        .out_len = sizeof(struct fuse_attr_out),
    };
    unsigned done = 0;
    int err = 0;

    while (done < PHASE_REQS && !err) {
        fc_req *r[8];
        unsigned k;

        for (k = 0; k < 8; k++) {
            err = fc_submit(q1, &call, &r[k]);
            if (err < 0)
                break;
        }
        for (unsigned i = 0; i < k; i++) {
            int e = fc_wait(r[i], 10000);

            if (e == 0 && r[i]->error)
                e = r[i]->error;
            if (e < 0 && !err)
                err = e;
            if (e != -ETIMEDOUT)
                fc_req_free(r[i]);
        }
        done += k;
    }
    CHECK(err == 0, "requests: %s", strerror(-err));
}

/*
 * Run a phase and check the pool threads that ran it run under @want.
 * Returns how many pool threads ran requests.
 */
static int phase(struct ch *h, int pid, int want, const char *what)
{
    static struct thr before[MAX_THREADS], after[MAX_THREADS];
    int nb = read_threads(pid, before, MAX_THREADS), na, ran = 0;

    CHECK(nb > 0, "%s: threads of pid %d: %s", what, pid, strerror(-nb));
    run_requests(h);
    na = read_threads(pid, after, MAX_THREADS);
    CHECK(na > 0, "%s: threads of pid %d", what, pid);
    for (int i = 0; i < na; i++) {
        const struct thr *b = find_tid(before, nb, after[i].tid);

        if (!strcmp(after[i].comm, "vfs-vq1"))
            CHECK_EQ(after[i].policy, POLICY_OTHER);
        if (strncmp(after[i].comm, "vfs-pool", 8))
            continue;
        /*
         * One that slept, woke and slept again during the phase, or a new
         * one that has slept (it took the policy when it started): both
         * ran since the phase's policy was set. A new thread that has not
         * slept yet may not have run its first line.
         */
        if (b ? after[i].vcsw - b->vcsw < 2 : after[i].vcsw < 1)
            continue;
        ran++;
        CHECK(after[i].policy == want, "%s: pool thread %d (%s) has policy "
              "%d, want %d", what, after[i].tid, after[i].comm,
              after[i].policy, want);
    }
    CHECK(ran >= 1, "%s: no pool thread ran requests", what);
    fprintf(stderr, "%s: %d pool thread(s) ran requests\n", what, ran);
    return ran;
}

/* "pool_sched" of every queue in a mode get / pool sched answer */
static void check_answer(const struct jm *v, const char *want, size_t min)
{
    const struct jm *qs = jm_get(v, "queues");
    size_t n = jm_count(qs);

    CHECK(ctl_ok(v), "answer not ok");
    CHECK(n >= min, "%zu queues in the answer", n);
    for (size_t i = 0; i < n; i++) {
        const char *s = jm_str(jm_get(jm_at(qs, i), "pool_sched"), "");

        CHECK(!strcmp(s, want), "queue %zu: pool_sched '%s', want '%s'", i,
              s, want);
    }
}

static void check_stats(struct ch *h, const char *want)
{
    struct jm *v = ctl_cmd_once(h->ctl, "stats");
    const struct jm *qs = jm_get(jm_get(v, "stats"), "queues");

    CHECK(ctl_ok(v), "stats");
    for (size_t i = 0; i < jm_count(qs); i++) {
        const char *s = jm_str(jm_get(jm_get(jm_at(qs, i), "pool"), "sched"),
                               "");

        CHECK(!strcmp(s, want), "stats queue %zu: pool.sched '%s', want "
              "'%s'", i, s, want);
    }
    jm_free(v);
}

int main(int argc, char **argv)
{
    struct ch_opts o = { .queues = 1, .pool = 4 };
    struct ch h2;
    struct ch h;
    struct jm *v;
    int pid, rc = ch_start(&h, argc, argv, &o);

    if (rc != T_PASS)
        return rc;
    pid = vuf_daemon_serving_pid(h.dmn);
    fprintf(stderr, "serving pid %d\n", pid);

    v = ctl_cmd_once(h.ctl, "mode get");
    check_answer(v, "normal", 2);
    jm_free(v);
    check_stats(&h, "normal");
    phase(&h, pid, POLICY_OTHER, "default (normal)");

    v = ctl_cmd_once(h.ctl, "pool sched batch all");
    check_answer(v, "batch", 2);
    jm_free(v);
    check_stats(&h, "batch");
    phase(&h, pid, POLICY_BATCH, "pool sched batch");

    v = ctl_cmd_once(h.ctl, "pool sched normal queue 1");
    CHECK(ctl_ok(v), "pool sched normal queue 1");
    CHECK_EQ(jm_count(jm_get(v, "queues")), 1);
    jm_free(v);
    phase(&h, pid, POLICY_OTHER, "pool sched normal queue 1");

    /* refused, and nothing changes */
    static const char *const bad[] = {
        "pool sched", "pool sched fifo", "pool sched batch queue 1000",
        "pool sched normal extra", "pool sched BATCH",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = ctl_cmd_once(h.ctl, bad[i]);
        CHECK(v && !ctl_ok(v) && jm_str(jm_get(v, "error"), NULL),
              "'%s' was not refused with an error", bad[i]);
        jm_free(v);
    }
    v = ctl_cmd_once(h.ctl, "mode get queue 1");
    check_answer(v, "normal", 1);
    jm_free(v);

    /*
     * Idle pool threads exit after 10 s (under the seccomp filter: a
     * syscall of thread exit outside the allowlist would kill the daemon),
     * and the pool makes new ones on the next requests.
     */
    {
        static struct thr t[MAX_THREADS];
        int n = 0, pool_threads = -1, waited;

        /* they go after 10 s idle; up to 20 s for a loaded machine */
        for (waited = 0; waited < 200 && pool_threads != 0; waited++) {
            usleep(100000);
            n = read_threads(pid, t, MAX_THREADS);
            pool_threads = 0;
            for (int i = 0; i < n; i++)
                pool_threads += !strncmp(t[i].comm, "vfs-pool", 8);
        }
        fprintf(stderr, "pool threads gone after %.1f s idle\n", waited / 10.0);
        CHECK(waited >= 90, "pool threads gone after %.1f s, before the 10 s "
              "idle timeout", waited / 10.0);
        CHECK(n > 0 && pool_threads == 0, "%d pool thread(s) left after 20 s "
              "idle (%d threads)", pool_threads, n);
        v = ctl_cmd_once(h.ctl, "stats");
        CHECK(jm_u64(jm_path(v, "stats.queues.1.pool.threads"), 99) == 0,
              "stats: pool threads after idle exit");
        jm_free(v);
    }
    CHECK(ch_alive(&h), "daemon died while its pool threads exited");
    phase(&h, pid, POLICY_OTHER, "after idle exit");
    rc = ch_stop(&h);
    if (rc != T_PASS)
        return rc;

    /* --pool-sched=batch from the start */
    o.extra[0] = "--pool-sched=batch";
    rc = ch_start(&h2, argc, argv, &o);
    if (rc != T_PASS)
        return rc;
    pid = vuf_daemon_serving_pid(h2.dmn);
    v = ctl_cmd_once(h2.ctl, "mode get");
    check_answer(v, "batch", 2);
    jm_free(v);
    phase(&h2, pid, POLICY_BATCH, "--pool-sched=batch");
    rc = ch_stop(&h2);
    if (rc != T_PASS)
        return rc;
    return t_failures ? T_FAIL : T_PASS;
}
