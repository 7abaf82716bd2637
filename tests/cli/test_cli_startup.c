/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_cli_startup: in every sandbox mode (and seccomp=kill, the default)
 * the daemon creates its socket mode 0700, serves a vhost-user message
 * after the sandbox is up, and exits 0 when the frontend disconnects or
 * on SIGTERM (waiting or serving). Around it: a stale socket is replaced,
 * a live one or a regular file is refused, --fd takes a listening or a
 * connected socket, --socket-group gives 0770 and the group,
 * --daemonize returns with the socket in place, --rlimit-nofile applies,
 * and namespace mode without privileges fails with advice.
 *
 * usage: test_cli_startup /path/to/virtiofsd
 * Modes needing root (namespace, chroot) are skipped when not root.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_helpers.h"

#define T_START 10000   /* ms: socket appears */
#define T_EXIT 10000    /* ms: exit after disconnect/signal */

static const char *daemon_path;
static bool is_root;

struct run {
    char dir[256];
    char sock[300];
    char log[300];
    pid_t pid;
};

static bool run_setup(struct run *r)
{
    memset(r, 0, sizeof(*r));
    if (!cli_tmpdir(r->dir, sizeof(r->dir)))
        return false;
    snprintf(r->sock, sizeof(r->sock), "%s", cli_path(r->dir, "sock"));
    snprintf(r->log, sizeof(r->log), "%s", cli_path(r->dir, "log"));
    return true;
}

/* Start the daemon on r->sock and r->dir/share plus @extra args. */
static bool run_start(struct run *r, const char *const *extra, int keep_fd,
                      bool with_socket_path, uid_t uid)
{
    char sockarg[340], srcarg[340];
    char *argv[32];
    int n = 0;

    snprintf(sockarg, sizeof(sockarg), "--socket-path=%s", r->sock);
    snprintf(srcarg, sizeof(srcarg), "source=%s", cli_path(r->dir, "share"));
    argv[n++] = (char *)daemon_path;
    if (with_socket_path)
        argv[n++] = sockarg;
    argv[n++] = (char *)"-o";
    argv[n++] = srcarg;
    for (; extra && *extra && n < 31; extra++)
        argv[n++] = (char *)*extra;
    argv[n] = NULL;

    struct cli_spawn s = {
        .argv = argv, .log_path = r->log, .keep_fd = keep_fd, .uid = uid,
    };
    r->pid = cli_spawn(&s);
    return r->pid > 0;
}

static void dump_log(const struct run *r)
{
    char *log = cli_slurp(r->log);

    fprintf(stderr, "---- daemon log (%s)\n%s----\n", r->log, log);
    free(log);
}

static bool exited_with(int status, int code)
{
    return status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == code;
}

static void run_finish(struct run *r)
{
    if (r->pid > 0)
        cli_kill(r->pid);
    r->pid = 0;
    cli_rmtree(r->dir);
}

#define EXPECT(r, cond)                                                      \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);  \
            cli_failures++;                                                  \
            dump_log(r);                                                     \
            goto out;                                                        \
        }                                                                    \
    } while (0)

/* Socket appears 0700, serves after the sandbox, disconnect => exit 0. */
static void test_mode(const char *mode, const char *pool)
{
    char sandbox[64];
    const char *extra[] = { "-o", sandbox, pool, NULL };
    struct run r;
    struct stat st;
    uint64_t features = 0;
    int fd = -1, status;
    char *log;

    fprintf(stderr, "== sandbox=%s %s\n", mode, pool);
    snprintf(sandbox, sizeof(sandbox), "sandbox=%s", mode);
    if (!run_setup(&r))
        return (void)cli_failures++;
    EXPECT(&r, run_start(&r, extra, -1, true, 0));
    EXPECT(&r, cli_wait_socket(r.sock, T_START));
    EXPECT(&r, stat(r.sock, &st) == 0 && (st.st_mode & 0777) == 0700);
    fd = cli_connect(r.sock);
    EXPECT(&r, fd >= 0);
    /* an answer proves sandbox, caps and seccomp are up and let it work */
    EXPECT(&r, cli_vu_get_features(fd, &features, T_EXIT));
    EXPECT(&r, features & (1ULL << 30));    /* VHOST_USER_F_PROTOCOL_FEATURES */
    close(fd);
    fd = -1;
    status = cli_wait(r.pid, T_EXIT);
    EXPECT(&r, exited_with(status, 0));
    r.pid = 0;
    log = cli_slurp(r.log);
    if (!strstr(log, "frontend connected") || !strstr(log, "sandbox=")) {
        fprintf(stderr, "FAIL: log lacks the startup lines\n");
        cli_failures++;
        dump_log(&r);
    }
    free(log);
out:
    if (fd >= 0)
        close(fd);
    run_finish(&r);
}

/* SIGTERM while waiting for the frontend, and while serving: exit 0. */
static void test_sigterm(const char *mode)
{
    char sandbox[64];
    const char *extra[] = { "-o", sandbox, NULL };
    struct run r;
    int fd = -1, status;

    fprintf(stderr, "== SIGTERM, sandbox=%s\n", mode);
    snprintf(sandbox, sizeof(sandbox), "sandbox=%s", mode);

    if (!run_setup(&r))
        return (void)cli_failures++;
    EXPECT(&r, run_start(&r, extra, -1, true, 0));
    EXPECT(&r, cli_wait_socket(r.sock, T_START));
    usleep(100000);     /* be in accept(), not before it */
    kill(r.pid, SIGTERM);
    status = cli_wait(r.pid, T_EXIT);
    EXPECT(&r, exited_with(status, 0));
    r.pid = 0;
    run_finish(&r);

    if (!run_setup(&r))
        return (void)cli_failures++;
    EXPECT(&r, run_start(&r, extra, -1, true, 0));
    EXPECT(&r, cli_wait_socket(r.sock, T_START));
    fd = cli_connect(r.sock);
    EXPECT(&r, fd >= 0);
    EXPECT(&r, cli_vu_get_features(fd, NULL, T_EXIT));
    /* in namespace mode this reaches the outer waiter, which forwards it */
    kill(r.pid, SIGTERM);
    status = cli_wait(r.pid, T_EXIT);
    EXPECT(&r, exited_with(status, 0));
    r.pid = 0;
    /* and the connection is really closed, not held by a leftover */
    EXPECT(&r, cli_wait_eof(fd, T_EXIT));
out:
    if (fd >= 0)
        close(fd);
    run_finish(&r);
}

static int bind_unix(const char *path, bool do_listen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        (do_listen && listen(fd, 1) < 0)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* The socket path: stale socket replaced, live one and files refused. */
static void test_socket_path_states(void)
{
    const char *extra[] = { "-o", "sandbox=none", NULL };
    struct run r;
    int fd = -1, other = -1, status;
    char *content, *log;
    FILE *f;

    fprintf(stderr, "== stale socket\n");
    if (!run_setup(&r))
        return (void)cli_failures++;
    other = bind_unix(r.sock, true);
    EXPECT(&r, other >= 0);
    close(other);       /* the path stays, nobody listens: stale */
    other = -1;
    EXPECT(&r, run_start(&r, extra, -1, true, 0));
    /* the old socket file exists from the start: wait for a listener */
    for (int i = 0; i < T_START / 10 && fd < 0; i++) {
        fd = cli_connect(r.sock);
        if (fd < 0)
            usleep(10000);
    }
    EXPECT(&r, fd >= 0);
    EXPECT(&r, cli_vu_get_features(fd, NULL, T_EXIT));
    close(fd);
    fd = -1;
    EXPECT(&r, exited_with(cli_wait(r.pid, T_EXIT), 0));
    r.pid = 0;
    run_finish(&r);

    fprintf(stderr, "== socket in use\n");
    if (!run_setup(&r))
        return (void)cli_failures++;
    other = bind_unix(r.sock, true);
    EXPECT(&r, other >= 0);
    EXPECT(&r, run_start(&r, extra, -1, true, 0));
    status = cli_wait(r.pid, T_EXIT);
    EXPECT(&r, exited_with(status, 1));
    r.pid = 0;
    log = cli_slurp(r.log);
    CHECK(strstr(log, "in use") != NULL);
    free(log);
    /* the other listener still owns the path */
    fd = cli_connect(r.sock);
    EXPECT(&r, fd >= 0);
    close(fd);
    fd = -1;
    close(other);
    other = -1;
    run_finish(&r);

    fprintf(stderr, "== regular file at the socket path\n");
    if (!run_setup(&r))
        return (void)cli_failures++;
    f = fopen(r.sock, "w");
    EXPECT(&r, f != NULL);
    fputs("keep me", f);
    fclose(f);
    EXPECT(&r, run_start(&r, extra, -1, true, 0));
    status = cli_wait(r.pid, T_EXIT);
    EXPECT(&r, exited_with(status, 1));
    r.pid = 0;
    content = cli_slurp(r.sock);
    CHECK(!strcmp(content, "keep me"));
    free(content);
    log = cli_slurp(r.log);
    CHECK(strstr(log, "not a socket") != NULL);
    free(log);
out:
    if (fd >= 0)
        close(fd);
    if (other >= 0)
        close(other);
    run_finish(&r);
}

/* --fd: a listening socket (accepted) or a connected one (used as is). */
static void test_fd(void)
{
    char fdarg[32];
    const char *extra[] = { fdarg, "-o", "sandbox=none", NULL };
    struct run r;
    int lfd = -1, fd = -1, sv[2] = { -1, -1 };

    fprintf(stderr, "== --fd listening\n");
    if (!run_setup(&r))
        return (void)cli_failures++;
    lfd = bind_unix(r.sock, true);
    EXPECT(&r, lfd >= 0);
    snprintf(fdarg, sizeof(fdarg), "--fd=%d", lfd);
    EXPECT(&r, run_start(&r, extra, lfd, false, 0));
    close(lfd);
    lfd = -1;
    fd = cli_connect(r.sock);
    EXPECT(&r, fd >= 0);
    EXPECT(&r, cli_vu_get_features(fd, NULL, T_EXIT));
    close(fd);
    fd = -1;
    EXPECT(&r, exited_with(cli_wait(r.pid, T_EXIT), 0));
    r.pid = 0;
    run_finish(&r);

    fprintf(stderr, "== --fd connected\n");
    if (!run_setup(&r))
        return (void)cli_failures++;
    EXPECT(&r, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    snprintf(fdarg, sizeof(fdarg), "--fd=%d", sv[1]);
    EXPECT(&r, run_start(&r, extra, sv[1], false, 0));
    close(sv[1]);
    sv[1] = -1;
    EXPECT(&r, cli_vu_get_features(sv[0], NULL, T_EXIT));
    close(sv[0]);
    sv[0] = -1;
    EXPECT(&r, exited_with(cli_wait(r.pid, T_EXIT), 0));
    r.pid = 0;
out:
    if (lfd >= 0)
        close(lfd);
    if (fd >= 0)
        close(fd);
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    run_finish(&r);
}

/* --socket-group: 0770 and the group; --rlimit-nofile applied. */
static void test_group_and_rlimit(void)
{
    char group[32];
    const char *extra[] = { "-o", "sandbox=none", group,
                            "--rlimit-nofile=4096", NULL };
    struct run r;
    struct stat st;
    char limits_path[64], *limits, *line;
    unsigned long soft = 0, hard = 0;
    gid_t gid = getgid() ? getgid() : 0;

    fprintf(stderr, "== --socket-group, --rlimit-nofile\n");
    snprintf(group, sizeof(group), "--socket-group=%u", (unsigned int)gid);
    if (!run_setup(&r))
        return (void)cli_failures++;
    EXPECT(&r, run_start(&r, extra, -1, true, 0));
    EXPECT(&r, cli_wait_socket(r.sock, T_START));
    EXPECT(&r, stat(r.sock, &st) == 0);
    EXPECT(&r, (st.st_mode & 0777) == 0770 && st.st_gid == gid);
    snprintf(limits_path, sizeof(limits_path), "/proc/%d/limits", (int)r.pid);
    limits = cli_slurp(limits_path);
    line = strstr(limits, "Max open files");
    CHECK(line && sscanf(line + strlen("Max open files"), "%lu %lu", &soft,
                         &hard) == 2 && soft == 4096 && hard == 4096);
    free(limits);
out:
    run_finish(&r);
}

static bool process_with_arg_exists(const char *needle)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    bool found = false;

    if (!d)
        return false;
    while (!found && (de = readdir(d))) {
        char path[300], *cmd;

        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
        cmd = cli_slurp(path);
        /* cmdline is NUL-separated; the socket arg is one element */
        for (char *p = cmd; *p; p += strlen(p) + 1)
            if (strstr(p, needle) && strstr(p, "--socket-path="))
                found = true;
        free(cmd);
    }
    closedir(d);
    return found;
}

/* --daemonize: returns 0 at once with the socket listening. */
static void test_daemonize(void)
{
    const char *extra[] = { "-o", "sandbox=none", "--daemonize", NULL };
    struct run r;
    int fd = -1, status;
    bool gone = false;

    fprintf(stderr, "== --daemonize\n");
    if (!run_setup(&r))
        return (void)cli_failures++;
    EXPECT(&r, run_start(&r, extra, -1, true, 0));
    status = cli_wait(r.pid, T_START);
    EXPECT(&r, exited_with(status, 0));
    r.pid = 0;
    /* no waiting: the socket must exist when the parent returns */
    fd = cli_connect(r.sock);
    EXPECT(&r, fd >= 0);
    EXPECT(&r, cli_vu_get_features(fd, NULL, T_EXIT));
    close(fd);
    fd = -1;
    for (int i = 0; i < T_EXIT / 20 && !gone; i++) {
        gone = !process_with_arg_exists(r.dir);
        if (!gone)
            usleep(20000);
    }
    EXPECT(&r, gone);
out:
    if (fd >= 0)
        close(fd);
    run_finish(&r);
}

/* Unprivileged namespace mode: exit 1 and suggest the alternatives. */
static void test_namespace_unprivileged(void)
{
    const char *extra[] = { "-o", "sandbox=namespace", NULL };
    struct run r;
    int fd = -1, status;
    char *log;

    fprintf(stderr, "== sandbox=namespace as an unprivileged user\n");
    if (!run_setup(&r))
        return (void)cli_failures++;
    /* nobody must reach the socket directory and the source */
    chmod(r.dir, 0777);
    EXPECT(&r, run_start(&r, extra, -1, true, 65534));
    EXPECT(&r, cli_wait_socket(r.sock, T_START));
    fd = cli_connect(r.sock);
    EXPECT(&r, fd >= 0);
    status = cli_wait(r.pid, T_EXIT);
    EXPECT(&r, exited_with(status, 1));
    r.pid = 0;
    log = cli_slurp(r.log);
    if (!strstr(log, "sandbox=chroot") || !strstr(log, "sandbox=none")) {
        fprintf(stderr, "FAIL: no advice in the error\n");
        cli_failures++;
        dump_log(&r);
    }
    free(log);
out:
    if (fd >= 0)
        close(fd);
    run_finish(&r);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s /path/to/virtiofsd\n", argv[0]);
        return 1;
    }
    daemon_path = argv[1];
    if (access(daemon_path, X_OK) != 0) {
        fprintf(stderr, "SKIP: %s not executable\n", daemon_path);
        return 77;
    }
    is_root = geteuid() == 0;
    signal(SIGPIPE, SIG_IGN);

    test_mode("none", "--thread-pool-size=0");
    test_mode("none", "--thread-pool-size=4");
    test_sigterm("none");
    if (is_root) {
        test_mode("chroot", "--thread-pool-size=0");
        test_mode("namespace", "--thread-pool-size=0");
        test_mode("namespace", "--thread-pool-size=4");
        test_sigterm("chroot");
        test_sigterm("namespace");
        test_namespace_unprivileged();
    } else {
        fprintf(stderr, "SKIP: chroot/namespace modes need root\n");
    }
    test_socket_path_states();
    test_fd();
    test_group_and_rlimit();
    test_daemonize();

    if (!cli_failures)
        printf("ok\n");
    return cli_result();
}
