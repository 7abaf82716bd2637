/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_virtiofsctl: the command-line client against a running daemon.
 * `mode` switches exactly the queues asked for (checked on the socket),
 * `stats` shows the requests the frontend sent (table and --json), `top`
 * prints one screen per interval with the opcode under load, `reset`
 * zeroes the counters, `raw` passes lines through and reports the daemon's
 * verdict in its exit status, and bad usage exits 2 without touching the
 * daemon.
 */
#include "ctl_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static struct ch H;

/* Run virtiofsctl ARGS... (NULL-terminated); its stdout in *out. */
static int run(char **out, const char *first, ...)
{
    const char *argv[32];
    int argc = 0, pfd[2], st = 0;
    posix_spawn_file_actions_t fa;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    va_list ap;
    pid_t pid;

    argv[argc++] = H.ctl_exe;
    va_start(ap, first);
    for (const char *a = first; a && argc < 31; a = va_arg(ap, const char *))
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    if (!buf || pipe2(pfd, O_CLOEXEC) < 0) {
        free(buf);
        return -1;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
    if (posix_spawn(&pid, H.ctl_exe, &fa, NULL, (char **)argv, environ) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        close(pfd[0]);
        close(pfd[1]);
        free(buf);
        return -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    for (;;) {
        ssize_t n;

        if (len + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);

            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
        n = read(pfd[0], buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(pfd[0]);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* The daemon's "mode get queue @q" answer (jm_free it). */
static struct jm *mode_get(unsigned q)
{
    char line[32];

    snprintf(line, sizeof(line), "mode get queue %u", q);
    return ctl_cmd_once(H.ctl, line);
}

static void queue_state(unsigned q, char *mode, size_t len, unsigned *size)
{
    struct jm *v = mode_get(q);

    snprintf(mode, len, "%s", jm_str(jm_path(v, "queues.0.mode"), "?"));
    *size = (unsigned)jm_u64(jm_path(v, "queues.0.pool_size"), 9999);
    jm_free(v);
}

/* auto's threshold of queue @q (mode get), us; 0 if missing */
static unsigned auto_slow(unsigned q)
{
    struct jm *v = mode_get(q);
    unsigned us = (unsigned)jm_u64(jm_path(v, "queues.0.auto.slow_us"), 0);

    jm_free(v);
    return us;
}

static void getattrs(unsigned q, int n)
{
    struct fuse_attr_out a;

    for (int i = 0; i < n; i++)
        CHECK(fc_getattr(fc_chan_get(H.c, q), FUSE_ROOT_ID, &a) == 0,
              "GETATTR %d", i);
}

static bool load_stop;

static void *load_fn(void *arg)
{
    struct fuse_attr_out a;

    (void)arg;
    while (!__atomic_load_n(&load_stop, __ATOMIC_ACQUIRE))
        fc_getattr(fc_chan_get(H.c, 2), FUSE_ROOT_ID, &a);
    return NULL;
}

static unsigned count(const char *hay, const char *needle)
{
    unsigned n = 0;

    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

int main(int argc, char **argv)
{
    struct ch_opts o = { .queues = 2, .pool = 0,
                         .extra = { "--auto-slow-us=40" } };
    char mode[16], *out = NULL;
    unsigned size;
    int rc = ch_start(&H, argc, argv, &o);

    if (rc != T_PASS)
        return rc;
    if (!H.ctl_exe || access(H.ctl_exe, X_OK)) {
        fprintf(stderr, "SKIP: no virtiofsctl (--ctl PATH)\n");
        ch_stop(&H);
        return T_SKIP;
    }

    /* mode (get): the started queues, inline (--thread-pool-size=0) */
    CHECK_EQ(run(&out, "-s", H.ctl, "mode", NULL), 0);
    CHECK(out && strstr(out, "QUEUE") && count(out, " inline ") == 3 &&
          count(out, " yes ") == 3, "mode output:\n%s", out);
    free(out);

    /* switch one queue, then another, then resize all */
    CHECK_EQ(run(&out, "-s", H.ctl, "mode", "--queue", "1", "pool",
                 "--threads", "3", NULL), 0);
    CHECK(out && strstr(out, "1 queue(s) switched"), "output:\n%s", out);
    free(out);
    queue_state(1, mode, sizeof(mode), &size);
    CHECK(!strcmp(mode, "pool") && size == 3, "queue 1: %s %u", mode, size);
    queue_state(2, mode, sizeof(mode), &size);
    CHECK(!strcmp(mode, "inline") && size == 0, "queue 2: %s %u", mode, size);
    CHECK_EQ(run(NULL, "-s", H.ctl, "mode", "pool", "--queue", "2", NULL), 0);
    queue_state(2, mode, sizeof(mode), &size);
    /* no size given, none before: the default pool size */
    CHECK(!strcmp(mode, "pool") && size == 4, "queue 2: %s %u", mode, size);
    CHECK_EQ(run(NULL, "-s", H.ctl, "mode", "--queue", "1", "inline", NULL), 0);
    queue_state(1, mode, sizeof(mode), &size);
    CHECK(!strcmp(mode, "inline") && size == 3, "queue 1: %s %u", mode, size);
    CHECK_EQ(run(NULL, "-s", H.ctl, "mode", "--threads", "5", NULL), 0);
    queue_state(1, mode, sizeof(mode), &size);
    CHECK(!strcmp(mode, "inline") && size == 5, "queue 1: %s %u", mode, size);
    queue_state(2, mode, sizeof(mode), &size);
    CHECK(!strcmp(mode, "pool") && size == 5, "queue 2: %s %u", mode, size);

    /* the pool threads' policy: default normal, then one queue batch */
    CHECK_EQ(run(&out, "-s", H.ctl, "mode", NULL), 0);
    CHECK(out && strstr(out, "SCHED") && count(out, " normal") == 3,
          "mode output:\n%s", out);
    free(out);
    CHECK_EQ(run(&out, "-s", H.ctl, "mode", "--queue", "2", "--sched",
                 "batch", NULL), 0);
    CHECK(out && count(out, " batch") == 1 && count(out, " normal") == 0,
          "output:\n%s", out);
    free(out);
    CHECK_EQ(run(&out, "-s", H.ctl, "mode", NULL), 0);
    CHECK(out && count(out, " batch") == 1 && count(out, " normal") == 2,
          "mode output:\n%s", out);
    free(out);

    /* auto's threshold: --auto-slow-us=40 on every queue, then queue 1's */
    CHECK(auto_slow(0) == 40 && auto_slow(1) == 40 && auto_slow(2) == 40,
          "--auto-slow-us=40: %u %u %u", auto_slow(0), auto_slow(1),
          auto_slow(2));
    CHECK_EQ(run(&out, "-s", H.ctl, "mode", "--queue", "1", "--auto-slow",
                 "7", NULL), 0);
    CHECK(out && strstr(out, "SLOW_US") && count(out, "  7 ") == 1,
          "output:\n%s", out);
    free(out);
    CHECK(auto_slow(0) == 40 && auto_slow(1) == 7 && auto_slow(2) == 40,
          "after --queue 1 --auto-slow 7: %u %u %u", auto_slow(0),
          auto_slow(1), auto_slow(2));
    CHECK_EQ(run(NULL, "-s", H.ctl, "mode", "--auto-slow", "0", NULL), 2);
    CHECK_EQ(run(NULL, "-s", H.ctl, "mode", "--auto-slow", "2000000", NULL),
             2);
    CHECK_EQ(run(NULL, "-s", H.ctl, "mode", "--auto-slow", "5", "--sched",
                 "batch", NULL), 2);
    CHECK_EQ(run(NULL, "-s", H.ctl, "mode", "--auto-slow", "5", "pool",
                 NULL), 2);
    CHECK(auto_slow(1) == 7, "refused --auto-slow changed queue 1: %u",
          auto_slow(1));

    /* stats: what we sent shows up */
    CHECK_EQ(run(NULL, "-s", H.ctl, "reset", NULL), 0);
    getattrs(1, 40);
    getattrs(2, 25);
    usleep(100000);
    CHECK_EQ(run(&out, "-s", H.ctl, "stats", "--json", NULL), 0);
    {
        struct jm *v = out ? jm_parse(out, strlen(out), NULL, 0) : NULL;
        const struct jm *qs = jm_path(v, "stats.queues");

        CHECK(ctl_ok(v), "stats --json is not an ok answer");
        CHECK(jm_u64(jm_get(jm_at(qs, 1), "requests"), 0) == 40 &&
              jm_u64(jm_get(jm_at(qs, 2), "requests"), 0) == 25,
              "requests %llu / %llu",
              (unsigned long long)jm_u64(jm_get(jm_at(qs, 1), "requests"), 0),
              (unsigned long long)jm_u64(jm_get(jm_at(qs, 2), "requests"), 0));
        jm_free(v);
    }
    free(out);
    CHECK_EQ(run(&out, "-s", H.ctl, "stats", NULL), 0);
    CHECK(out && strstr(out, "queue 1 (request)") &&
          strstr(out, "queue 2 (request)") && count(out, "GETATTR") == 2 &&
          strstr(out, "requests 40") && strstr(out, "requests 25"),
          "stats table:\n%s", out);
    free(out);

    /* top: two screens with the opcode under load */
    {
        pthread_t th;

        pthread_create(&th, NULL, load_fn, NULL);
        CHECK_EQ(run(&out, "-s", H.ctl, "top", "--iterations", "2",
                     "--interval", "0.3", NULL), 0);
        __atomic_store_n(&load_stop, true, __ATOMIC_RELEASE);
        pthread_join(th, NULL);
        CHECK(out && count(out, "OPS/S") == 4 && count(out, "GETATTR") >= 2 &&
              count(out, "virtiofsd top") == 2, "top output:\n%s", out);
        free(out);
    }

    /* reset, through the environment variable this time */
    setenv("VIRTIOFSCTL_SOCKET", H.ctl, 1);
    CHECK_EQ(run(&out, "reset", NULL), 0);
    CHECK(out && strstr(out, "counters reset"), "reset output: %s", out);
    free(out);
    {
        struct jm *v = ctl_cmd_once(H.ctl, "stats");

        CHECK(jm_u64(jm_path(v, "stats.queues.1.requests"), 1) == 0,
              "queue 1 not reset");
        jm_free(v);
    }

    /* raw: the line through, the verdict in the exit status */
    CHECK_EQ(run(&out, "raw", "version", NULL), 0);
    CHECK(out && strstr(out, "\"protocol\":1"), "raw version: %s", out);
    free(out);
    CHECK_EQ(run(&out, "raw", "mode set sideways", NULL), 1);
    CHECK(out && strstr(out, "\"ok\":false"), "raw error: %s", out);
    free(out);
    CHECK_EQ(run(NULL, "mode", "sideways", NULL), 2);
    CHECK_EQ(run(NULL, "mode", "--threads", "0", NULL), 2);
    CHECK_EQ(run(NULL, "mode", "inline", "--threads", "2", NULL), 2);
    CHECK_EQ(run(NULL, "mode", "--sched", "fifo", NULL), 2);
    CHECK_EQ(run(NULL, "mode", "pool", "--sched", "batch", NULL), 2);
    CHECK_EQ(run(NULL, "frobnicate", NULL), 2);
    CHECK_EQ(run(NULL, "top", "--iterations", "0", NULL), 2);
    CHECK_EQ(run(NULL, NULL), 2);
    /* the daemon refuses what the client lets through */
    CHECK_EQ(run(NULL, "mode", "--queue", "99", "inline", NULL), 1);
    CHECK_EQ(run(NULL, "mode", "pool", "--threads", "5000", NULL), 1);
    CHECK_EQ(run(NULL, "-s", "/nonexistent/ctl.sock", "mode", NULL), 1);
    unsetenv("VIRTIOFSCTL_SOCKET");
    CHECK_EQ(run(NULL, "mode", NULL), 2);
    /* nothing of that changed the queues */
    queue_state(1, mode, sizeof(mode), &size);
    CHECK(!strcmp(mode, "inline") && size == 5, "queue 1: %s %u", mode, size);
    getattrs(1, 5);
    getattrs(2, 5);

    rc = ch_stop(&H);
    if (rc == T_PASS && t_failures) {
        fprintf(stderr, "%d check(s) failed\n", t_failures);
        rc = T_FAIL;
    }
    if (rc == T_PASS)
        printf("ok\n");
    return rc;
}
