/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Shared setup for the control-socket tests; see ctl_harness.h. */
#include "ctl_harness.h"

#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

int t_failures;

static const char *arg_or_env(int argc, char **argv, const char *opt,
                              const char *env)
{
    size_t n = strlen(opt);

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], opt) && i + 1 < argc)
            return argv[i + 1];
        if (!strncmp(argv[i], opt, n) && argv[i][n] == '=')
            return argv[i] + n + 1;
    }
    if (env) {
        const char *v = getenv(env);

        return v && *v ? v : NULL;
    }
    return NULL;
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

static int start(struct ch *h, int argc, char **argv, const struct ch_opts *o)
{
    char sockarg[320], srcarg[320], poolarg[64], ctlarg[340];
    const char *args[24];
    unsigned n = 0;
    int ret;

    snprintf(h->dir, sizeof(h->dir), "/tmp/vfs-ctl-test.XXXXXX");
    if (!mkdtemp(h->dir)) {
        perror("mkdtemp");
        h->dir[0] = '\0';
        return T_FAIL;
    }
    snprintf(h->share, sizeof(h->share), "%s/share", h->dir);
    snprintf(h->sock, sizeof(h->sock), "%s/vhost.sock", h->dir);
    snprintf(h->ctl, sizeof(h->ctl), "%s/control.sock", h->dir);
    snprintf(h->log, sizeof(h->log), "%s/daemon.log", h->dir);
    if (mkdir(h->share, 0755) < 0) {
        perror("mkdir share");
        return T_FAIL;
    }
    snprintf(sockarg, sizeof(sockarg), "--socket-path=%s", h->sock);
    snprintf(srcarg, sizeof(srcarg), "source=%s", h->share);
    snprintf(poolarg, sizeof(poolarg), "--thread-pool-size=%u", o->pool);
    snprintf(ctlarg, sizeof(ctlarg), "--control-socket=%s", h->ctl);
    args[n++] = h->daemon;
    args[n++] = sockarg;
    args[n++] = "-o";
    args[n++] = srcarg;
    args[n++] = poolarg;
    args[n++] = ctlarg;
    for (unsigned i = 0; i < 8 && o->extra[i]; i++)
        args[n++] = o->extra[i];
    args[n] = NULL;

    struct vuf_spawn_opts so = {
        .argv = args,
        .mode = VUF_SPAWN_SOCKET_PATH,
        .log_path = h->log,
    };
    ret = vuf_daemon_spawn(&so, &h->dmn);
    if (ret < 0) {
        fprintf(stderr, "spawn %s: %s\n", h->daemon, strerror(-ret));
        ch_dump_log(h);
        return T_FAIL;
    }
    fprintf(stderr, "daemon: %s\n", vuf_daemon_cmdline(h->dmn));

    struct vuf_opts vo = {
        .num_request_queues = h->queues,
        .queue_size = o->queue_size,
        .event_idx = true,
        .indirect_desc = true,
        .timeout_ms = 20000,
    };
    ret = vuf_dev_new(vuf_daemon_take_fd(h->dmn), &vo, &h->dev);
    if (ret < 0) {
        fprintf(stderr, "vuf_dev_new: %s\n", strerror(-ret));
        return T_FAIL;
    }
    ret = vuf_dev_start(h->dev);
    if (ret < 0) {
        fprintf(stderr, "vuf_dev_start: %s\n", strerror(-ret));
        ch_dump_log(h);
        return T_FAIL;
    }
    ret = fc_new(h->dev, &h->c);
    if (ret < 0)
        return T_FAIL;
    ret = fc_init(fc_chan_get(h->c, 1), NULL, NULL);
    if (ret < 0) {
        fprintf(stderr, "FUSE_INIT: %s\n", strerror(-ret));
        ch_dump_log(h);
        return T_FAIL;
    }
    return T_PASS;
}

int ch_start(struct ch *h, int argc, char **argv, const struct ch_opts *o)
{
    int rc;

    memset(h, 0, sizeof(*h));
    h->daemon = arg_or_env(argc, argv, "--daemon", "VUF_DAEMON");
    h->ctl_exe = arg_or_env(argc, argv, "--ctl", NULL);
    h->queues = o->queues ? o->queues : 1;
    if (!h->daemon || access(h->daemon, X_OK) != 0) {
        fprintf(stderr, "SKIP: no daemon (--daemon PATH or $VUF_DAEMON)\n");
        return T_SKIP;
    }
    rc = start(h, argc, argv, o);
    if (rc != T_PASS) {
        ch_stop(h);
        return T_FAIL;
    }
    return T_PASS;
}

bool ch_alive(struct ch *h)
{
    return h->dmn && vuf_daemon_wait(h->dmn, 0, NULL) == 0;
}

void ch_dump_log(struct ch *h)
{
    FILE *f = fopen(h->log, "r");
    char line[1024];
    unsigned n = 0;

    if (!f)
        return;
    fprintf(stderr, "---- daemon log %s ----\n", h->log);
    /* the switch test logs a line per flip: keep the head and the errors */
    while (fgets(line, sizeof(line), f)) {
        if (n++ < 60 || !strstr(line, "info: control:"))
            fputs(line, stderr);
    }
    fprintf(stderr, "---- end of daemon log ----\n");
    fclose(f);
}

int ch_stop(struct ch *h)
{
    int rc = T_PASS;

    if (h->c) {
        struct fc_stats s;

        fc_get_stats(h->c, &s);
        if (s.unique_mismatch || s.len_mismatch || s.short_reply ||
            s.bogus_used || s.bad_error) {
            fprintf(stderr, "FAIL: protocol violations: unique %llu len %llu "
                    "short %llu bogus-used %llu bad-error %llu\n",
                    (unsigned long long)s.unique_mismatch,
                    (unsigned long long)s.len_mismatch,
                    (unsigned long long)s.short_reply,
                    (unsigned long long)s.bogus_used,
                    (unsigned long long)s.bad_error);
            rc = T_FAIL;
        }
    }
    fc_free(h->c);
    h->c = NULL;
    vuf_dev_free(h->dev);
    h->dev = NULL;
    if (h->dmn) {
        int st = 0;
        int w = vuf_daemon_wait(h->dmn, 10000, &st);

        if (w != 1) {
            fprintf(stderr, "FAIL: daemon still running 10 s after disconnect\n");
            rc = T_FAIL;
        } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "FAIL: daemon ended with status 0x%x\n", st);
            rc = T_FAIL;
        }
        vuf_daemon_free(h->dmn);
        h->dmn = NULL;
    }
    if (rc != T_PASS || t_failures)
        ch_dump_log(h);
    if (h->dir[0] && !getenv("VUF_KEEP"))
        nftw(h->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}

/* ---- control client ---- */

int ctl_open(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int err = errno;

        close(fd);
        return -err;
    }
    return fd;
}

int ctl_write(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * Peeks, then takes only up to the newline: whatever follows stays in the
 * socket for the next call (tests send several commands per connection).
 */
char *ctl_read_line(int fd, int timeout_ms)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);

    while (buf) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        ssize_t n;
        char *nl;
        int r = poll(&pfd, 1, timeout_ms);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (len + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);

            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
        n = recv(fd, buf + len, cap - 1 - len, MSG_PEEK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        nl = memchr(buf + len, '\n', (size_t)n);
        if (nl)
            n = nl - (buf + len) + 1;
        n = recv(fd, buf + len, (size_t)n, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (nl) {
            buf[len - 1] = '\0';
            return buf;
        }
    }
    free(buf);
    return NULL;
}

struct jm *ctl_cmd(int fd, const char *line)
{
    size_t n = strlen(line);
    char *msg = malloc(n + 1);
    char err[160], *ans;
    struct jm *v;

    if (!msg)
        return NULL;
    memcpy(msg, line, n);
    msg[n] = '\n';
    if (ctl_write(fd, msg, n + 1) < 0) {
        free(msg);
        return NULL;
    }
    free(msg);
    ans = ctl_read_line(fd, 20000);
    if (!ans) {
        fprintf(stderr, "control: no answer to '%s'\n", line);
        return NULL;
    }
    v = jm_parse(ans, strlen(ans), err, sizeof(err));
    if (!v)
        fprintf(stderr, "control: answer to '%s' is not JSON (%s): %.200s\n",
                line, err, ans);
    free(ans);
    return v;
}

struct jm *ctl_cmd_once(const char *path, const char *line)
{
    int fd = ctl_open(path);
    struct jm *v;

    if (fd < 0) {
        fprintf(stderr, "control: connect %s: %s\n", path, strerror(-fd));
        return NULL;
    }
    v = ctl_cmd(fd, line);
    close(fd);
    return v;
}

bool ctl_ok(const struct jm *v)
{
    return jm_bool(jm_get(v, "ok"), false);
}
