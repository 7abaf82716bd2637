/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Shared setup for the frontend-driven tests; see harness.h. */
#include "harness.h"

#include <errno.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int t_failures;

#define UPSTREAM_DAEMON "/usr/lib/qemu/virtiofsd"

static const char *arg_or_env(int argc, char **argv, const char *opt, const char *env)
{
    size_t n = strlen(opt);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], opt) && i + 1 < argc) {
            return argv[i + 1];
        }
        if (!strncmp(argv[i], opt, n) && argv[i][n] == '=') {
            return argv[i] + n + 1;
        }
    }
    const char *v = getenv(env);
    return v && *v ? v : NULL;
}

static bool has_flag(int argc, char **argv, const char *opt)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], opt)) {
            return true;
        }
    }
    return false;
}

static int start(struct harness *h, int argc, char **argv, const struct vuf_opts *o);

int harness_start(struct harness *h, int argc, char **argv, const struct vuf_opts *o)
{
    int rc = start(h, argc, argv, o);
    if (rc == T_FAIL) {
        /* Leave no daemon or scratch directory behind. */
        h->allow_exit_failure = true;
        harness_stop(h);
    }
    return rc;
}

static int start(struct harness *h, int argc, char **argv, const struct vuf_opts *o)
{
    int ret;
    memset(h, 0, sizeof(*h));
    h->daemon = arg_or_env(argc, argv, "--daemon", "VUF_DAEMON");
    if (!h->daemon) {
        h->daemon = UPSTREAM_DAEMON;
    }
    const char *v = arg_or_env(argc, argv, "--pool", "VUF_POOL");
    h->pool = v ? (unsigned)atoi(v) : 0;
    v = arg_or_env(argc, argv, "--queues", "VUF_QUEUES");
    h->queues = v ? (unsigned)atoi(v) : 0;
    v = getenv("VUF_FD");
    h->use_fd = has_flag(argc, argv, "--fd") || (v && !strcmp(v, "1"));
    h->upstream = strstr(h->daemon, "/qemu/") != NULL;
    if (h->upstream || !h->queues) {
        h->queues = 1;   /* upstream exits if more than one request queue starts */
    }
    if (access(h->daemon, X_OK) != 0) {
        fprintf(stderr, "SKIP: daemon %s not executable\n", h->daemon);
        return T_SKIP;
    }

    snprintf(h->dir, sizeof(h->dir), "/tmp/vufront-test.XXXXXX");
    if (!mkdtemp(h->dir)) {
        perror("mkdtemp");
        return T_FAIL;
    }
    snprintf(h->share, sizeof(h->share), "%s/share", h->dir);
    snprintf(h->sock, sizeof(h->sock), "%s/vhost.sock", h->dir);
    snprintf(h->log, sizeof(h->log), "%s/daemon.log", h->dir);
    if (mkdir(h->share, 0755) < 0) {
        perror("mkdir share");
        return T_FAIL;
    }

    char sockarg[320], srcarg[320], poolarg[64];
    snprintf(sockarg, sizeof(sockarg), "--socket-path=%s", h->sock);
    snprintf(srcarg, sizeof(srcarg), "source=%s", h->share);
    snprintf(poolarg, sizeof(poolarg), "--thread-pool-size=%u", h->pool);
    const char *args[12 + HARNESS_MAX_EXTRA_ARGS];
    unsigned n = 0;
    args[n++] = h->daemon;
    if (!h->use_fd) {
        args[n++] = sockarg;
    }
    args[n++] = "-o";
    args[n++] = srcarg;
    args[n++] = "-o";
    args[n++] = "cache=auto";
    args[n++] = poolarg;
    /* $VUF_EXTRA_ARGS: more daemon words, split on blanks (e.g. the
     * conformance test's "-o xattr -o posix_lock -o flock"). */
    v = getenv("VUF_EXTRA_ARGS");
    if (v && *v) {
        snprintf(h->extra_args, sizeof(h->extra_args), "%s", v);
        char *save = NULL;
        unsigned extra = 0;
        for (char *w = strtok_r(h->extra_args, " \t", &save); w;
             w = strtok_r(NULL, " \t", &save)) {
            if (extra++ == HARNESS_MAX_EXTRA_ARGS) {
                fprintf(stderr, "VUF_EXTRA_ARGS: more than %d words\n",
                        HARNESS_MAX_EXTRA_ARGS);
                return T_FAIL;
            }
            args[n++] = w;
        }
    }
    args[n] = NULL;
    /* Upstream's seccomp filter kills a new pool thread's first malloc
     * (sched_getaffinity from arena creation) unless arenas are capped. */
    const char *env[] = { "MALLOC_ARENA_MAX=8", NULL };
    struct vuf_spawn_opts so = {
        .argv = args,
        .env = (h->upstream && h->pool) ? env : NULL,
        /* Upstream's --fd wants a listening socket (it calls accept());
         * ours takes an already-connected one. */
        .mode = !h->use_fd ? VUF_SPAWN_SOCKET_PATH
                : h->upstream ? VUF_SPAWN_FD_LISTEN : VUF_SPAWN_FD_CONNECTED,
        .log_path = h->log,
    };
    ret = vuf_daemon_spawn(&so, &h->dmn);
    if (ret < 0) {
        fprintf(stderr, "spawn %s: %s\n", h->daemon,
                ret == -ECHILD ? "it exited before accepting a connection" : strerror(-ret));
        harness_dump_log(h);
        return T_FAIL;
    }
    fprintf(stderr, "daemon: %s\n", vuf_daemon_cmdline(h->dmn));

    struct vuf_opts vo = { 0 };
    if (o) {
        vo = *o;
    }
    vo.num_request_queues = h->queues;
    ret = vuf_dev_new(vuf_daemon_take_fd(h->dmn), &vo, &h->dev);
    if (ret < 0) {
        fprintf(stderr, "vuf_dev_new: %s\n", strerror(-ret));
        return T_FAIL;
    }
    ret = vuf_dev_start(h->dev);
    if (ret < 0) {
        fprintf(stderr, "vuf_dev_start: %s\n", strerror(-ret));
        harness_dump_log(h);
        return T_FAIL;
    }
    ret = fc_new(h->dev, &h->c);
    if (ret < 0) {
        return T_FAIL;
    }
    h->hiprio = fc_chan_get(h->c, 0);
    h->req = fc_chan_get(h->c, 1);
    ret = fc_init(h->req, NULL, &h->init);
    if (ret < 0) {
        fprintf(stderr, "FUSE_INIT: %s\n", strerror(-ret));
        harness_dump_log(h);
        return T_FAIL;
    }
    return T_PASS;
}

bool harness_log_has_sanitizer_report(const struct harness *h)
{
    FILE *f = fopen(h->log, "r");
    char line[512];
    bool found = false;
    if (!f) {
        return false;
    }
    while (!found && fgets(line, sizeof(line), f)) {
        found = strstr(line, "runtime error:") || strstr(line, "AddressSanitizer") ||
                strstr(line, "LeakSanitizer") || strstr(line, "ThreadSanitizer");
    }
    fclose(f);
    return found;
}

void harness_dump_log(struct harness *h)
{
    FILE *f = fopen(h->log, "r");
    if (!f) {
        return;
    }
    char line[512];
    fprintf(stderr, "---- daemon log %s ----\n", h->log);
    while (fgets(line, sizeof(line), f)) {
        fputs(line, stderr);
    }
    fprintf(stderr, "---- end of daemon log ----\n");
    fclose(f);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

int harness_stop(struct harness *h)
{
    int rc = T_PASS;
    if (h->c) {
        struct fc_stats s;
        fc_get_stats(h->c, &s);
        if (s.unique_mismatch || s.len_mismatch || s.short_reply || s.bogus_used ||
            s.bad_error) {
            fprintf(stderr, "FAIL: protocol violations: unique %llu len %llu short %llu "
                    "bogus-used %llu bad-error %llu\n",
                    (unsigned long long)s.unique_mismatch, (unsigned long long)s.len_mismatch,
                    (unsigned long long)s.short_reply, (unsigned long long)s.bogus_used,
                    (unsigned long long)s.bad_error);
            rc = T_FAIL;
        }
    }
    fc_free(h->c);
    h->c = NULL;
    vuf_dev_free(h->dev);  /* the daemon sees the frontend go away */
    h->dev = NULL;
    if (h->dmn) {
        int st = 0;
        int w = vuf_daemon_wait(h->dmn, 10000, &st);
        if (w != 1) {
            fprintf(stderr, "FAIL: daemon still running 10 s after disconnect\n");
            rc = T_FAIL;
        } else if ((!WIFEXITED(st) || WEXITSTATUS(st) != 0) && !h->allow_exit_failure) {
            fprintf(stderr, "FAIL: daemon ended with status 0x%x after disconnect\n", st);
            rc = T_FAIL;
        }
        vuf_daemon_free(h->dmn);
        h->dmn = NULL;
    }
    if (rc != T_PASS || t_failures) {
        harness_dump_log(h);
    }
    if (h->dir[0] && !getenv("VUF_KEEP")) {
        nftw(h->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
    return rc;
}
