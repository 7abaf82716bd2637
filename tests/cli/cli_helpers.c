/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "cli_helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int cli_failures;

int cli_result(void)
{
    if (cli_failures) {
        fprintf(stderr, "%d check(s) failed\n", cli_failures);
        return 1;
    }
    return 0;
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void append(char **buf, size_t *len, const char *data, size_t n)
{
    char *p = realloc(*buf, *len + n + 1);

    if (!p)
        abort();
    memcpy(p + *len, data, n);
    *len += n;
    p[*len] = '\0';
    *buf = p;
}

int cli_run(char *const argv[], char **out, char **err, int timeout_ms)
{
    int po[2], pe[2], status;
    size_t lo = 0, le = 0;
    long long deadline = now_ms() + timeout_ms;
    bool open_o = true, open_e = true;
    pid_t pid;

    *out = calloc(1, 1);
    *err = calloc(1, 1);
    if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0)
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        execv(argv[0], argv);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    while (open_o || open_e) {
        struct pollfd pfd[2] = {
            { .fd = open_o ? po[0] : -1, .events = POLLIN },
            { .fd = open_e ? pe[0] : -1, .events = POLLIN },
        };
        long long left = deadline - now_ms();
        char buf[4096];
        ssize_t n;

        if (left <= 0)
            break;
        if (poll(pfd, 2, (int)left) <= 0)
            continue;
        if (pfd[0].revents) {
            n = read(po[0], buf, sizeof(buf));
            if (n > 0)
                append(out, &lo, buf, (size_t)n);
            else
                open_o = false;
        }
        if (pfd[1].revents) {
            n = read(pe[0], buf, sizeof(buf));
            if (n > 0)
                append(err, &le, buf, (size_t)n);
            else
                open_e = false;
        }
    }
    close(po[0]);
    close(pe[0]);
    status = cli_wait(pid, (int)(deadline - now_ms() > 0 ? deadline - now_ms() : 0));
    if (status < 0) {
        fprintf(stderr, "timeout: %s\n", argv[0]);
        cli_kill(pid);
    }
    return status;
}

pid_t cli_spawn(const struct cli_spawn *s)
{
    pid_t pid;

    fflush(NULL);
    pid = fork();
    if (pid != 0)
        return pid;
    if (s->log_path) {
        int fd = open(s->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);

        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            if (fd > 2)
                close(fd);
        }
    }
    if (s->keep_fd >= 0)
        fcntl(s->keep_fd, F_SETFD, 0);
    if (s->uid && (setgid(s->uid) < 0 || setuid(s->uid) < 0))
        _exit(126);
    execv(s->argv[0], s->argv);
    _exit(127);
}

int cli_wait(pid_t pid, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    int status;

    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);

        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            return -1;
        if (now_ms() >= deadline)
            return -1;
        usleep(10000);
    }
}

void cli_kill(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

bool cli_wait_socket(const char *path, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    struct stat st;

    do {
        if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
            return true;
        usleep(10000);
    } while (now_ms() < deadline);
    return false;
}

int cli_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool read_full(int fd, void *buf, size_t len, long long deadline)
{
    size_t got = 0;

    while (got < len) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        long long left = deadline - now_ms();
        ssize_t n;

        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            return false;
        n = read(fd, (char *)buf + got, len - got);
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    return true;
}

bool cli_vu_get_features(int fd, uint64_t *features, int timeout_ms)
{
    /* vhost-user: u32 request, u32 flags (version 1), u32 size */
    uint32_t hdr[3] = { 1 /* GET_FEATURES */, 0x1, 0 };
    uint32_t rhdr[3];
    uint64_t f;
    long long deadline = now_ms() + timeout_ms;

    if (send(fd, hdr, sizeof(hdr), MSG_NOSIGNAL) != (ssize_t)sizeof(hdr))
        return false;
    if (!read_full(fd, rhdr, sizeof(rhdr), deadline))
        return false;
    if (rhdr[0] != 1 || (rhdr[1] & 0x3) != 1 || !(rhdr[1] & 0x4) ||
        rhdr[2] != sizeof(f))
        return false;
    if (!read_full(fd, &f, sizeof(f), deadline))
        return false;
    if (features)
        *features = f;
    return true;
}

bool cli_wait_eof(int fd, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;

    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        long long left = deadline - now_ms();
        char c;

        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            return false;
        if (read(fd, &c, 1) <= 0)
            return true;
    }
}

char *cli_slurp(const char *path)
{
    FILE *f = fopen(path, "re");
    char *buf = calloc(1, 1);
    size_t len = 0;
    char tmp[4096];
    size_t n;

    if (!f)
        return buf;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        append(&buf, &len, tmp, n);
    fclose(f);
    return buf;
}

const char *cli_path(const char *dir, const char *name)
{
    static char bufs[4][512];
    static int next;
    char *b = bufs[next++ % 4];

    snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
    return b;
}

bool cli_tmpdir(char *buf, size_t len)
{
    snprintf(buf, len, "/tmp/vfs-cli.XXXXXX");
    if (!mkdtemp(buf))
        return false;
    return mkdir(cli_path(buf, "share"), 0755) == 0;
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

void cli_rmtree(const char *dir)
{
    if (!getenv("VFS_CLI_KEEP"))
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
