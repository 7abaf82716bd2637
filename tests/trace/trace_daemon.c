/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "trace_daemon.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Distinct primes, so a probe counted under the wrong opcode shows. */
const struct tload_count tload_counts[] = {
    { FUSE_CREATE, 1, 1 },
    { FUSE_WRITE, 7, 1 },
    { FUSE_READ, 11, 1 },
    { FUSE_GETATTR, 5, 1 },
    { FUSE_LOOKUP, 3, 1 },
    { FUSE_FLUSH, 1, 1 },
    { FUSE_RELEASE, 1, 1 },
    { FUSE_FORGET, 1, 0 },
};
const unsigned int tload_nopcodes = sizeof(tload_counts) / sizeof(tload_counts[0]);

static unsigned int count_of(uint32_t opcode)
{
    for (unsigned int i = 0; i < tload_nopcodes; i++)
        if (tload_counts[i].opcode == opcode)
            return tload_counts[i].n;
    return 0;
}

int tload_run(struct tdaemon *t)
{
    struct fuse_entry_out e, e2;
    struct fuse_open_out oo;
    struct fuse_attr_out a;
    char buf[4096];
    unsigned int i;
    int r;

    r = fc_create(t->req, FUSE_ROOT_ID, "traced", O_RDWR | O_CREAT | O_EXCL,
                  0100644, &e, &oo);
    if (r < 0)
        return r;
    memset(buf, 'x', sizeof(buf));
    for (i = 0; i < count_of(FUSE_WRITE); i++) {
        ssize_t n = fc_write(t->req, e.nodeid, oo.fh, i * sizeof(buf), buf,
                             sizeof(buf));
        if (n != (ssize_t)sizeof(buf))
            return n < 0 ? (int)n : -EIO;
    }
    for (i = 0; i < count_of(FUSE_READ); i++) {
        ssize_t n = fc_read(t->req, e.nodeid, oo.fh,
                            (i % count_of(FUSE_WRITE)) * sizeof(buf), buf,
                            sizeof(buf));
        if (n != (ssize_t)sizeof(buf))
            return n < 0 ? (int)n : -EIO;
    }
    for (i = 0; i < count_of(FUSE_GETATTR); i++) {
        r = fc_getattr(t->req, e.nodeid, &a);
        if (r < 0)
            return r;
    }
    for (i = 0; i < count_of(FUSE_LOOKUP); i++) {
        r = fc_lookup(t->req, FUSE_ROOT_ID, "traced", &e2);
        if (r < 0)
            return r;
    }
    r = fc_flush(t->req, e.nodeid, oo.fh);
    if (r < 0)
        return r;
    r = fc_release(t->req, e.nodeid, oo.fh, O_RDWR);
    if (r < 0)
        return r;
    /* CREATE and every LOOKUP took a reference */
    return fc_forget(t->hiprio, e.nodeid, 1 + count_of(FUSE_LOOKUP));
}

void tdaemon_dump_log(const struct tdaemon *t)
{
    FILE *f = fopen(t->log, "r");
    char line[1024];

    if (!f)
        return;
    fprintf(stderr, "---- daemon log %s ----\n", t->log);
    while (fgets(line, sizeof(line), f))
        fputs(line, stderr);
    fprintf(stderr, "---- end of daemon log ----\n");
    fclose(f);
}

int tdaemon_start(struct tdaemon *t, const char *daemon, unsigned int pool,
                  const char *const *extra)
{
    char sockarg[160], srcarg[160], poolarg[64];
    const char *args[24];
    struct vuf_opts vo = { .num_request_queues = 1, .event_idx = true,
                           .indirect_desc = true };
    unsigned int n = 0;
    int r;

    memset(t, 0, sizeof(*t));
    snprintf(t->dir, sizeof(t->dir), "/tmp/vfs-trace-test.XXXXXX");
    if (!mkdtemp(t->dir)) {
        perror("mkdtemp");
        return T_FAIL;
    }
    snprintf(t->share, sizeof(t->share), "%s/share", t->dir);
    snprintf(t->sock, sizeof(t->sock), "%s/vhost.sock", t->dir);
    snprintf(t->log, sizeof(t->log), "%s/daemon.log", t->dir);
    if (mkdir(t->share, 0755) < 0) {
        perror("mkdir share");
        return T_FAIL;
    }
    snprintf(sockarg, sizeof(sockarg), "--socket-path=%s", t->sock);
    snprintf(srcarg, sizeof(srcarg), "source=%s", t->share);
    snprintf(poolarg, sizeof(poolarg), "--thread-pool-size=%u", pool);
    args[n++] = daemon;
    args[n++] = sockarg;
    args[n++] = "-o";
    args[n++] = srcarg;
    args[n++] = poolarg;
    for (unsigned int i = 0; extra && extra[i] && n < 23; i++)
        args[n++] = extra[i];
    args[n] = NULL;

    struct vuf_spawn_opts so = {
        .argv = args,
        .mode = VUF_SPAWN_SOCKET_PATH,
        .log_path = t->log,
    };
    r = vuf_daemon_spawn(&so, &t->dmn);
    if (r < 0) {
        fprintf(stderr, "spawn %s: %s\n", daemon, strerror(-r));
        tdaemon_dump_log(t);
        return T_FAIL;
    }
    fprintf(stderr, "daemon: %s\n", vuf_daemon_cmdline(t->dmn));
    r = vuf_dev_new(vuf_daemon_take_fd(t->dmn), &vo, &t->dev);
    if (r == 0)
        r = vuf_dev_start(t->dev);
    if (r == 0)
        r = fc_new(t->dev, &t->c);
    if (r == 0) {
        t->hiprio = fc_chan_get(t->c, 0);
        t->req = fc_chan_get(t->c, 1);
        r = fc_init(t->req, NULL, NULL);
    }
    if (r < 0) {
        fprintf(stderr, "device start / FUSE_INIT: %s\n", strerror(-r));
        tdaemon_dump_log(t);
        return T_FAIL;
    }
    return T_PASS;
}

pid_t tdaemon_serving_pid(struct tdaemon *t)
{
    return vuf_daemon_serving_pid(t->dmn);
}

int tdaemon_stop(struct tdaemon *t)
{
    int rc = T_PASS, st = 0;

    fc_free(t->c);
    t->c = NULL;
    vuf_dev_free(t->dev);
    t->dev = NULL;
    if (t->dmn) {
        if (vuf_daemon_wait(t->dmn, 10000, &st) != 1) {
            fprintf(stderr, "FAIL: daemon still running 10 s after disconnect\n");
            rc = T_FAIL;
        } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "FAIL: daemon ended with status 0x%x\n", st);
            rc = T_FAIL;
        }
        vuf_daemon_free(t->dmn);
        t->dmn = NULL;
    }
    return rc;
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void tdaemon_cleanup(struct tdaemon *t)
{
    if (t->dir[0] && !getenv("VUF_KEEP"))
        nftw(t->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
