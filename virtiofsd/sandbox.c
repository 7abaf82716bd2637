/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Sandbox: the same three modes and the same namespace recipe as QEMU
 * 7.2's virtiofsd documents (docs/tools/virtiofsd.rst), written anew:
 *
 *   namespace  unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET), fork;
 *              the child is pid 1 of the pid namespace, mounts a /proc of
 *              its own, bind-mounts the source onto itself, pivot_root()s
 *              into it and detaches the old root. No host path is
 *              reachable any more, and no network either.
 *   chroot     chroot(2) into the source (for containers, where new
 *              namespaces are often not allowed).
 *   none       ours: only capabilities and seccomp.
 *
 * In every mode /proc/self/fd is opened first: passthrough reopens its
 * O_PATH inode fds through it, and after pivot_root/chroot /proc is gone.
 */
#include "sandbox.h"

#include <cap-ng.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

/* What passthrough needs as root: ownership, modes, devices, setfcap. */
static const unsigned int passthrough_caps[] = {
    CAP_CHOWN,          /* create as the guest's uid/gid, chown */
    CAP_DAC_OVERRIDE,   /* root in the guest reads/writes anything */
    CAP_FOWNER,         /* chmod/utimes/xattrs on files we do not own */
    CAP_FSETID,         /* keep setgid when creating in setgid dirs */
    CAP_SETGID,         /* per-thread credential switch (setresgid) */
    CAP_SETUID,         /* per-thread credential switch (setresuid) */
    CAP_MKNOD,          /* mknod of device nodes for the guest */
    CAP_SETFCAP,        /* security.capability xattrs */
};

static int open_proc_self_fd(const char *proc)
{
    char path[64];
    int fd;

    snprintf(path, sizeof(path), "%s/self/fd", proc);
    fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;

        vfs_err("sandbox: open %s: %s (is /proc mounted?)", path,
                strerror(err));
        return -err;
    }
    return fd;
}

/* ------------------------------------------------------------------ */
/* namespace mode: the waiting parent                                  */

static volatile pid_t ns_child;

static void forward_signal(int sig)
{
    int saved = errno;

    if (ns_child > 0)
        kill(ns_child, sig);
    errno = saved;
}

/*
 * The parent has nothing left to do but wait, so it keeps nothing: no
 * fds beyond stdio and the liveness pipe (the child must be the only
 * holder of the vhost-user socket, or QEMU would never see it close), no
 * capabilities (kill() of our own child needs none).
 */
static void __attribute__((noreturn)) ns_parent(pid_t child, int alive_wr)
{
    struct sigaction sa;
    sigset_t set;
    int status;
    pid_t r;

    ns_child = child;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = forward_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    /* main.c keeps them blocked for its signal thread; we want them now */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_UNBLOCK, &set, NULL);

    if (alive_wr > 3 && syscall(SYS_close_range, 3, alive_wr - 1, 0) < 0)
        for (int fd = 3; fd < alive_wr; fd++)
            close(fd);
    if (syscall(SYS_close_range, alive_wr + 1, ~0U, 0) < 0)
        for (int fd = alive_wr + 1; fd < 1024; fd++)
            close(fd);
    capng_clear(CAPNG_SELECT_BOTH);
    if (capng_apply(CAPNG_SELECT_BOTH) < 0)
        capng_apply(CAPNG_SELECT_CAPS);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);

    do {
        r = waitpid(child, &status, 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        vfs_err("sandbox: waitpid: %s", strerror(errno));
        _exit(1);
    }
    /* _exit: nothing of ours to flush, and no atexit work (a leak
     * checker) in a process that dropped its capabilities. */
    if (WIFEXITED(status))
        _exit(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);

        if (sig == SIGSYS)
            vfs_err("sandboxed daemon killed by SIGSYS: a syscall outside "
                    "the seccomp allowlist (rerun with --seccomp=log and "
                    "look for 'audit: type=1326 ... syscall=N' in dmesg)");
        else
            vfs_err("sandboxed daemon killed by signal %d (%s)", sig,
                    strsignal(sig));
        _exit(128 + sig);
    }
    _exit(1);
}

/* ------------------------------------------------------------------ */
/* namespace mode: the child                                           */

static int ns_child_setup(const char *source, struct vfs_sandbox *sb,
                          int alive_rd)
{
    struct pollfd pfd = { .fd = alive_rd, .events = POLLIN };
    int proc_fd, src_fd;

    /*
     * Die with the waiter, so a killed parent does not leave an orphan
     * serving the guest. SIGKILL, not upstream's SIGTERM: a clean stop
     * comes forwarded by a living waiter; this is for a dead one, and
     * must work whatever state we are in. If the parent died before this
     * prctl, the pipe already shows it: its write end is closed.
     */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
        vfs_err("sandbox: PR_SET_PDEATHSIG: %s", strerror(errno));
        return -errno;
    }
    if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLERR))) {
        vfs_err("sandbox: parent exited during setup");
        return -ESRCH;
    }
    close(alive_rd);

    /*
     * Our mounts must not propagate back to the host, but mounts the host
     * makes under the source later still reach us (slave, not private).
     */
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0) {
        vfs_err("sandbox: make mounts slave: %s", strerror(errno));
        return -errno;
    }
    /* A /proc of our pid namespace; /proc/self/fd must be this process. */
    if (mount("proc", "/proc", "proc", MS_NODEV | MS_NOEXEC | MS_NOSUID,
              NULL) < 0) {
        vfs_err("sandbox: mount /proc: %s", strerror(errno));
        return -errno;
    }
    proc_fd = open_proc_self_fd("/proc");
    if (proc_fd < 0)
        return proc_fd;

    /* pivot_root() wants a mount point: make the source one. */
    if (mount(source, source, NULL, MS_BIND | MS_REC, NULL) < 0) {
        vfs_err("sandbox: bind-mount %s: %s", source, strerror(errno));
        goto fail;
    }
    src_fd = open(source, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (src_fd < 0 || fchdir(src_fd) < 0) {
        vfs_err("sandbox: enter %s: %s", source, strerror(errno));
        if (src_fd >= 0)
            close(src_fd);
        goto fail;
    }
    close(src_fd);
    /*
     * pivot_root(".", ".") stacks the old root on top of the new one at
     * "/"; detaching "." then removes exactly the old root, with every
     * host mount under it.
     */
    if (syscall(SYS_pivot_root, ".", ".") < 0) {
        vfs_err("sandbox: pivot_root into %s: %s", source, strerror(errno));
        goto fail;
    }
    if (umount2(".", MNT_DETACH) < 0) {
        vfs_err("sandbox: detach old root: %s", strerror(errno));
        goto fail;
    }
    if (chdir("/") < 0) {
        vfs_err("sandbox: chdir /: %s", strerror(errno));
        goto fail;
    }
    sb->proc_self_fd = proc_fd;
    sb->root = "/";
    return 0;

fail:
    {
        int err = errno ? errno : EIO;

        close(proc_fd);
        return -err;
    }
}

static int enter_namespace(const char *source, struct vfs_sandbox *sb)
{
    int alive[2];
    pid_t child;
    int ret;

    if (unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET) < 0) {
        int err = errno;

        if (err == EPERM)
            vfs_err("sandbox=namespace: cannot create namespaces: %s. "
                    "It needs root (CAP_SYS_ADMIN); use -o sandbox=chroot "
                    "(needs CAP_SYS_CHROOT, e.g. in containers) or "
                    "-o sandbox=none", strerror(err));
        else
            vfs_err("sandbox=namespace: unshare: %s (try -o sandbox=chroot "
                    "or -o sandbox=none)", strerror(err));
        return -err;
    }
    if (pipe2(alive, O_CLOEXEC) < 0) {
        vfs_err("sandbox: pipe: %s", strerror(errno));
        return -errno;
    }
    fflush(NULL);   /* no stdio buffer written twice */
    child = fork();
    if (child < 0) {
        int err = errno;

        vfs_err("sandbox: fork: %s", strerror(err));
        close(alive[0]);
        close(alive[1]);
        return -err;
    }
    if (child > 0) {
        close(alive[0]);
        ns_parent(child, alive[1]);
    }
    close(alive[1]);
    ret = ns_child_setup(source, sb, alive[0]);
    if (ret < 0)
        vfs_err("sandbox=namespace failed; -o sandbox=chroot or "
                "-o sandbox=none avoid the namespace setup");
    return ret;
}

/* ------------------------------------------------------------------ */

static int enter_chroot(const char *source, struct vfs_sandbox *sb)
{
    int proc_fd = open_proc_self_fd("/proc");
    int err;

    if (proc_fd < 0)
        return proc_fd;
    if (chdir(source) < 0) {
        err = errno;
        vfs_err("sandbox=chroot: chdir %s: %s", source, strerror(err));
        goto fail;
    }
    if (chroot(".") < 0) {
        err = errno;
        if (err == EPERM)
            vfs_err("sandbox=chroot: chroot %s: %s. It needs "
                    "CAP_SYS_CHROOT; use -o sandbox=none", source,
                    strerror(err));
        else
            vfs_err("sandbox=chroot: chroot %s: %s", source, strerror(err));
        goto fail;
    }
    if (chdir("/") < 0) {
        err = errno;
        vfs_err("sandbox=chroot: chdir /: %s", strerror(err));
        goto fail;
    }
    sb->proc_self_fd = proc_fd;
    sb->root = "/";
    return 0;

fail:
    close(proc_fd);
    return -err;
}

int vfs_sandbox_enter(enum vfs_sandbox_mode mode, const char *source,
                      struct vfs_sandbox *sb)
{
    int fd;

    sb->proc_self_fd = -1;
    sb->root = NULL;
    if (!source || source[0] != '/') {
        vfs_err("sandbox: source must be an absolute path");
        return -EINVAL;
    }
    switch (mode) {
    case VFS_SANDBOX_NAMESPACE:
        return enter_namespace(source, sb);
    case VFS_SANDBOX_CHROOT:
        return enter_chroot(source, sb);
    case VFS_SANDBOX_NONE:
        fd = open_proc_self_fd("/proc");
        if (fd < 0)
            return fd;
        sb->proc_self_fd = fd;
        sb->root = source;
        return 0;
    }
    return -EINVAL;
}

/* ------------------------------------------------------------------ */

int vfs_sandbox_drop_caps(uint64_t add, uint64_t drop)
{
    uint64_t want = 0, have = 0, missing;
    bool bounding;
    int ret;

    for (size_t i = 0; i < sizeof(passthrough_caps) / sizeof(passthrough_caps[0]); i++)
        want |= 1ULL << passthrough_caps[i];
    want = (want | add) & ~drop;

    if (capng_get_caps_process() < 0) {
        vfs_err("capabilities: cannot read them");
        return -EIO;
    }
    for (unsigned int cap = 0; cap <= CAP_LAST_CAP && cap < 64; cap++)
        if (capng_have_capability(CAPNG_PERMITTED, cap))
            have |= 1ULL << cap;
    missing = add & ~have;
    if (missing) {
        for (unsigned int cap = 0; cap < 64; cap++)
            if (missing & (1ULL << cap))
                vfs_err("-o modcaps: cannot add %s: the process does not "
                        "hold it", capng_capability_to_name(cap));
        return -EPERM;
    }
    /* Changing the bounding set needs CAP_SETPCAP (which we then drop). */
    bounding = capng_have_capability(CAPNG_EFFECTIVE, CAP_SETPCAP);

    if (have) {
        capng_clear(CAPNG_SELECT_ALL);
        for (unsigned int cap = 0; cap < 64; cap++) {
            if (!(want & have & (1ULL << cap)))
                continue;
            capng_update(CAPNG_ADD, CAPNG_EFFECTIVE | CAPNG_PERMITTED |
                         CAPNG_BOUNDING_SET, cap);
        }
        ret = capng_apply(bounding ? CAPNG_SELECT_ALL : CAPNG_SELECT_CAPS);
        if (ret < 0) {
            vfs_err("capabilities: capng_apply failed (%d)", ret);
            return -EPERM;
        }
    }
    /* No exec may ever give privileges back (and seccomp wants it). */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        vfs_err("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
        return -errno;
    }
    vfs_debug("capabilities: kept 0x%llx of 0x%llx%s",
              (unsigned long long)(want & have), (unsigned long long)have,
              bounding ? ", bounding set too" : "");
    return 0;
}
