/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_sandbox: vfs_sandbox_enter() confines as documented -- none keeps
 * the host view, chroot and namespace show only the source at "/",
 * namespace adds new pid/mount/net namespaces and a waiter outside that
 * forwards SIGTERM and passes the exit status on -- and in every mode
 * proc_self_fd reopens our fds. vfs_sandbox_drop_caps() leaves exactly the
 * passthrough set +/- modcaps (bounding set too) and no_new_privs.
 * Each case runs in a child process; root-only cases skip otherwise.
 */
#include <cap-ng.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_helpers.h"
#include "sandbox.h"
#include "vfs_seccomp.h"

static char dir[256];
static char share[300];
static bool is_root;

/* Run @fn in a child; returns its wait status. */
static int in_child(int (*fn)(void *), void *arg)
{
    int status;
    pid_t pid;

    fflush(NULL);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0)
        _exit(fn(arg));
    if (waitpid(pid, &status, 0) < 0)
        return -1;
    return status;
}

static bool exited(int status, int code)
{
    if (WIFEXITED(status) && WEXITSTATUS(status) == code)
        return true;
    fprintf(stderr, "  child status: %s %d (want exit %d)\n",
            WIFEXITED(status) ? "exit" : "signal",
            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), code);
    return false;
}

#define REQUIRE(cond, code)                                                  \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "  child: %s:%d: %s (errno %s)\n", __FILE__,     \
                    __LINE__, #cond, strerror(errno));                       \
            return code;                                                     \
        }                                                                    \
    } while (0)

/* The fd we opened before the sandbox reopens through proc_self_fd. */
static int check_proc_self_fd(const struct vfs_sandbox *sb, int fd)
{
    struct stat a, b;
    char name[16];
    int fd2;

    snprintf(name, sizeof(name), "%d", fd);
    fd2 = openat(sb->proc_self_fd, name, O_RDONLY | O_CLOEXEC);
    REQUIRE(fd2 >= 0, 20);
    REQUIRE(fstat(fd, &a) == 0 && fstat(fd2, &b) == 0, 21);
    REQUIRE(a.st_ino == b.st_ino && a.st_dev == b.st_dev, 22);
    close(fd2);
    return 0;
}

static int child_none(void *arg)
{
    struct vfs_sandbox sb;
    struct stat st;
    int fd = open(cli_path(share, "marker"), O_RDONLY | O_CLOEXEC);

    REQUIRE(fd >= 0, 10);
    REQUIRE(vfs_sandbox_enter(VFS_SANDBOX_NONE, share, &sb) == 0, 11);
    REQUIRE(sb.root && !strcmp(sb.root, share), 12);
    REQUIRE(stat(dir, &st) == 0, 13);   /* the host view is intact */
    return check_proc_self_fd(&sb, fd);
}

static int child_chroot(void *arg)
{
    struct vfs_sandbox sb;
    struct stat st;
    int fd = open(cli_path(share, "marker"), O_RDONLY | O_CLOEXEC);

    REQUIRE(fd >= 0, 10);
    REQUIRE(vfs_sandbox_enter(VFS_SANDBOX_CHROOT, share, &sb) == 0, 11);
    REQUIRE(sb.root && !strcmp(sb.root, "/"), 12);
    REQUIRE(stat("/marker", &st) == 0, 13);
    REQUIRE(stat(dir, &st) < 0 && errno == ENOENT, 14);
    REQUIRE(stat("/proc/self", &st) < 0, 15);
    return check_proc_self_fd(&sb, fd);
}

struct ns_arg {
    char netns[64], mntns[64];
    int ready_wr;       /* -1, or: write a byte when set up, then pause */
    int exit_code;      /* what the inner process exits with on success */
};

static void on_term(int sig)
{
    _exit(5);
}

static int child_namespace(void *opaque)
{
    struct ns_arg *a = opaque;
    struct sigaction sa = { .sa_handler = on_term };
    struct vfs_sandbox sb;
    struct stat st;
    char buf[64];
    ssize_t n;
    int fd = open(cli_path(share, "marker"), O_RDONLY | O_CLOEXEC);

    REQUIRE(fd >= 0, 10);
    /* pid 1 gets only signals it handles (sandbox.h) */
    sigaction(SIGTERM, &sa, NULL);
    REQUIRE(vfs_sandbox_enter(VFS_SANDBOX_NAMESPACE, share, &sb) == 0, 11);
    /* from here on we are the inner process; the waiter has our parent */
    REQUIRE(getpid() == 1, 12);
    REQUIRE(sb.root && !strcmp(sb.root, "/"), 13);
    REQUIRE(stat("/marker", &st) == 0, 14);
    REQUIRE(stat(dir, &st) < 0 && errno == ENOENT, 15);
    REQUIRE(stat("/proc/self", &st) < 0, 16);
    REQUIRE(check_proc_self_fd(&sb, fd) == 0, 17);
    /* proc_self_fd is /proc/1/fd of our own /proc: look at our namespaces */
    n = readlinkat(sb.proc_self_fd, "../ns/net", buf, sizeof(buf) - 1);
    REQUIRE(n > 0, 18);
    buf[n] = '\0';
    REQUIRE(strcmp(buf, a->netns) != 0, 19);
    n = readlinkat(sb.proc_self_fd, "../ns/mnt", buf, sizeof(buf) - 1);
    REQUIRE(n > 0, 23);
    buf[n] = '\0';
    REQUIRE(strcmp(buf, a->mntns) != 0, 24);
    if (a->ready_wr >= 0) {
        REQUIRE(write(a->ready_wr, "r", 1) == 1, 25);
        for (;;)
            pause();    /* until the forwarded SIGTERM: exit 5 */
    }
    return a->exit_code;
}

/*
 * The inner process dies of a signal the kernel forces on it (pid 1
 * ignores ones it sends itself): the seccomp kill, the realistic case.
 */
static int child_namespace_killed(void *opaque)
{
    struct vfs_sandbox sb;
    struct utsname u;

    if (vfs_sandbox_enter(VFS_SANDBOX_NAMESPACE, share, &sb) != 0)
        return 11;
    if (vfs_seccomp_install(VFS_SECCOMP_KILL, false) != 0)
        return 12;
    syscall(SYS_uname, &u);
    return 13;
}

static void read_ns(const char *which, char *buf, size_t len)
{
    char path[64];
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/self/ns/%s", which);
    n = readlink(path, buf, len - 1);
    buf[n > 0 ? n : 0] = '\0';
}

static void test_namespace(void)
{
    struct ns_arg a = { .ready_wr = -1 };
    int pfd[2], status;
    pid_t pid;
    char c;

    read_ns("net", a.netns, sizeof(a.netns));
    read_ns("mnt", a.mntns, sizeof(a.mntns));

    /* success, and the inner exit code comes out of the waiter */
    a.exit_code = 0;
    CHECK(exited(in_child(child_namespace, &a), 0));
    a.exit_code = 7;
    CHECK(exited(in_child(child_namespace, &a), 7));
    /* a signal death of the inner process: 128 + N */
    CHECK(exited(in_child(child_namespace_killed, NULL), 128 + SIGSYS));

    /* SIGTERM to the waiter reaches the inner process */
    CHECK(pipe(pfd) == 0);
    a.ready_wr = pfd[1];
    fflush(NULL);
    pid = fork();
    if (pid == 0)
        _exit(child_namespace(&a));
    close(pfd[1]);
    CHECK(read(pfd[0], &c, 1) == 1);
    close(pfd[0]);
    kill(pid, SIGTERM);
    status = cli_wait(pid, 10000);
    if (status < 0)
        cli_kill(pid);
    CHECK(status >= 0 && exited(status, 5));
}

/* ---- capabilities ---- */

static bool status_field(const char *name, unsigned long long *val)
{
    char *s = cli_slurp("/proc/self/status");
    char key[32], *p;
    bool ok;

    snprintf(key, sizeof(key), "\n%s:", name);
    p = strstr(s, key);
    ok = p && sscanf(p + strlen(key), "%llx", val) == 1;
    free(s);
    return ok;
}

static uint64_t passthrough_set(void)
{
    return (1ULL << CAP_CHOWN) | (1ULL << CAP_DAC_OVERRIDE) |
           (1ULL << CAP_FOWNER) | (1ULL << CAP_FSETID) |
           (1ULL << CAP_SETGID) | (1ULL << CAP_SETUID) |
           (1ULL << CAP_MKNOD) | (1ULL << CAP_SETFCAP);
}

static int child_caps(void *arg)
{
    uint64_t want = (passthrough_set() | (1ULL << CAP_SYS_ADMIN)) &
                    ~(1ULL << CAP_MKNOD);
    unsigned long long eff, prm, bnd, inh, amb, nnp;
    char path[400];
    int fd;

    REQUIRE(vfs_sandbox_drop_caps(1ULL << CAP_SYS_ADMIN,
                                  1ULL << CAP_MKNOD) == 0, 10);
    REQUIRE(status_field("CapEff", &eff) && status_field("CapPrm", &prm) &&
            status_field("CapBnd", &bnd) && status_field("CapInh", &inh) &&
            status_field("CapAmb", &amb), 11);
    REQUIRE(status_field("NoNewPrivs", &nnp) && nnp == 1, 12);
    if (eff != want || prm != want || bnd != want || inh || amb) {
        fprintf(stderr, "  caps: eff %llx prm %llx bnd %llx inh %llx amb %llx,"
                " want %llx\n", eff, prm, bnd, inh, amb,
                (unsigned long long)want);
        return 13;
    }
    /* dropped: mknod of a device; kept: chown to someone else */
    snprintf(path, sizeof(path), "%s/dev", dir);
    REQUIRE(mknod(path, S_IFCHR | 0600, makedev(1, 3)) < 0 && errno == EPERM, 14);
    snprintf(path, sizeof(path), "%s/owned", dir);
    fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0 && fchown(fd, 1234, 1234) == 0, 15);
    close(fd);
    return 0;
}

/* Asking to add a capability we do not hold is an error, not a no-op. */
static int child_caps_missing(void *arg)
{
    capng_get_caps_process();
    capng_update(CAPNG_DROP, CAPNG_EFFECTIVE | CAPNG_PERMITTED, CAP_SYS_TIME);
    REQUIRE(capng_apply(CAPNG_SELECT_CAPS) == 0, 10);
    REQUIRE(vfs_sandbox_drop_caps(1ULL << CAP_SYS_TIME, 0) == -EPERM, 11);
    return 0;
}

static int child_caps_unprivileged(void *arg)
{
    unsigned long long eff, nnp;

    REQUIRE(vfs_sandbox_drop_caps(0, 0) == 0, 10);
    REQUIRE(status_field("CapEff", &eff) && eff == 0, 11);
    REQUIRE(status_field("NoNewPrivs", &nnp) && nnp == 1, 12);
    return 0;
}

int main(void)
{
    FILE *f;

    is_root = geteuid() == 0;
    if (!cli_tmpdir(dir, sizeof(dir)))
        return 1;
    snprintf(share, sizeof(share), "%s/share", dir);
    f = fopen(cli_path(share, "marker"), "w");
    if (!f)
        return 1;
    fclose(f);

    fprintf(stderr, "== none\n");
    CHECK(exited(in_child(child_none, NULL), 0));
    if (is_root) {
        fprintf(stderr, "== chroot\n");
        CHECK(exited(in_child(child_chroot, NULL), 0));
        fprintf(stderr, "== namespace\n");
        test_namespace();
        fprintf(stderr, "== capabilities\n");
        CHECK(exited(in_child(child_caps, NULL), 0));
        CHECK(exited(in_child(child_caps_missing, NULL), 0));
    } else {
        fprintf(stderr, "SKIP: chroot, namespace, capabilities need root\n");
        CHECK(exited(in_child(child_caps_unprivileged, NULL), 0));
    }

    cli_rmtree(dir);
    if (!cli_failures)
        printf("ok\n");
    return cli_result();
}
