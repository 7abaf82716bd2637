/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The syscall allowlist. One table, grouped by who needs the calls; a
 * name this architecture does not have is skipped (libseccomp resolves
 * names per arch), so the list can name both old and new variants.
 *
 * When something dies of SIGSYS: rerun with --seccomp=log, reproduce, and
 * read `dmesg | grep type=1326`; `syscall=N` is the number to add
 * (`scmp_sys_resolver N` names it).
 */
#include "vfs_seccomp.h"

#include <errno.h>
#include <seccomp.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>

#include "log.h"

struct sc_rule {
    const char *name;
    /* false: any arguments; true: only if argument 1 == a1 */
    bool filter_a1;
    uint64_t a1;
};

#define ANY(n) { n, false, 0 }

static const struct sc_rule allowlist[] = {
    /*
     * passthrough: everything relative to O_PATH inode fds, reopened
     * through /proc/self/fd; readdir; locks; data; xattrs by fd or by
     * the /proc/self/fd/N name relative to a per-thread cwd.
     */
    ANY("openat"), ANY("close"), ANY("newfstatat"), ANY("fstat"),
    ANY("statx"), ANY("getdents64"), ANY("linkat"), ANY("symlinkat"),
    ANY("mkdirat"), ANY("mknodat"), ANY("unlinkat"), ANY("renameat"),
    ANY("renameat2"), ANY("readlinkat"), ANY("fchmod"), ANY("fchmodat"),
    ANY("fchownat"), ANY("fchown"), ANY("ftruncate"), ANY("fallocate"),
    ANY("utimensat"), ANY("fsync"), ANY("fdatasync"), ANY("fstatfs"),
    ANY("faccessat"), ANY("faccessat2"), ANY("fcntl"), ANY("flock"),
    ANY("lseek"), ANY("copy_file_range"), ANY("pread64"), ANY("pwrite64"),
    ANY("preadv"), ANY("pwritev"), ANY("preadv2"), ANY("pwritev2"),
    ANY("dup"), ANY("dup3"), ANY("fchdir"),
    ANY("fgetxattr"), ANY("fsetxattr"), ANY("flistxattr"),
    ANY("fremovexattr"), ANY("getxattr"), ANY("setxattr"),
    ANY("listxattr"), ANY("removexattr"), ANY("lgetxattr"),
    ANY("lsetxattr"), ANY("llistxattr"), ANY("lremovexattr"),

    /*
     * passthrough: per-request credentials and umask. Every thread that
     * runs FUSE ops does unshare(CLONE_FS) once, so umask/fchdir stay
     * per thread; setresuid/setresgid are raw syscalls, thread-scoped.
     */
    ANY("umask"), ANY("unshare"), ANY("setresuid"), ANY("setresgid"),
    ANY("getuid"), ANY("geteuid"), ANY("getgid"), ANY("getegid"),
    ANY("getresuid"), ANY("getresgid"),

    /*
     * vhost-user and the rings: messages with fds, guest memory maps,
     * kick/call eventfds, the poll loops of the queue threads, and
     * shutdown() of the socket on SIGTERM.
     */
    ANY("recvmsg"), ANY("sendmsg"), ANY("recvfrom"), ANY("sendto"),
    ANY("shutdown"), ANY("mmap"), ANY("munmap"), ANY("mremap"),
    ANY("madvise"), ANY("eventfd2"), ANY("read"), ANY("write"),
    ANY("readv"), ANY("writev"), ANY("ppoll"), ANY("poll"),
    ANY("epoll_create1"), ANY("epoll_ctl"), ANY("epoll_wait"),
    ANY("epoll_pwait"),

    /*
     * Threads (glibc pthreads, GThreadPool growing and shrinking): a new
     * thread maps its stack, registers robust list and rseq; an exiting
     * one advises its stack away. glibc's malloc asks sched_getaffinity
     * on a thread's first malloc (arena sizing); glib 2.74 copies the
     * creator's scheduler attributes to pool threads.
     */
    ANY("clone"), ANY("clone3"), ANY("futex"), ANY("set_robust_list"),
    ANY("rseq"), ANY("mprotect"), ANY("brk"), ANY("exit"),
    ANY("exit_group"), ANY("sched_getaffinity"), ANY("sched_yield"),
    ANY("sched_getattr"), ANY("sched_setattr"), ANY("getrandom"),
    ANY("gettid"), ANY("getpid"), ANY("prctl"),

    /*
     * Signals: the interrupt signal that wakes side-pool threads blocked
     * in F_OFD_SETLKW (pthread_kill), the SIGTERM thread (sigwait),
     * abort().
     */
    ANY("tgkill"), ANY("rt_sigaction"), ANY("rt_sigprocmask"),
    ANY("rt_sigreturn"), ANY("rt_sigtimedwait"), ANY("restart_syscall"),

    /* Time: timestamps, timed condition waits, sleeps. */
    ANY("clock_gettime"), ANY("clock_getres"), ANY("gettimeofday"),
    ANY("clock_nanosleep"), ANY("nanosleep"),

    /* stdio's isatty() on first use of a stream; no other ioctl. */
    { "ioctl", true, TCGETS },

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    /*
     * Sanitizer runtimes: per-thread alternate stacks, limits, reports,
     * and LeakSanitizer's exit-time scan (a tracer task that ptraces our
     * threads, listed with the old getdents).
     */
    ANY("sigaltstack"), ANY("prlimit64"), ANY("getrlimit"),
    ANY("readlink"), ANY("open"), ANY("sched_getparam"),
    ANY("sched_getscheduler"), ANY("getppid"), ANY("pipe2"),
    ANY("wait4"), ANY("ptrace"), ANY("process_vm_readv"), ANY("getdents"),
#endif
};

/*
 * glibc's syslog() reconnects to /dev/log after an error (it sends with
 * send(), i.e. sendto, which the main list has).
 */
static const struct sc_rule syslog_list[] = {
    ANY("socket"), ANY("connect"),
};

/*
 * --control-socket (control.c): the main loop accepts clients; their
 * I/O (recvfrom/sendto/poll/close) is in the main list already.
 */
static const struct sc_rule control_list[] = {
    ANY("accept4"),
};

#undef ANY

static int add_rules(scmp_filter_ctx ctx, const struct sc_rule *rules,
                     size_t n, unsigned int *count)
{
    for (size_t i = 0; i < n; i++) {
        int nr = seccomp_syscall_resolve_name(rules[i].name);
        int ret;

        if (nr == __NR_SCMP_ERROR)
            continue;   /* not on this architecture */
        if (rules[i].filter_a1)
            ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
                                   SCMP_A1(SCMP_CMP_EQ, rules[i].a1));
        else
            ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
        /* -EDOM: a pseudo-syscall this arch cannot express; harmless */
        if (ret < 0 && ret != -EDOM) {
            vfs_err("seccomp: cannot allow %s: %s", rules[i].name,
                    strerror(-ret));
            return ret;
        }
        if (count)
            (*count)++;
    }
    return 0;
}

unsigned int vfs_seccomp_allowlist_size(bool syslog)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL);
    unsigned int n = 0;

    if (!ctx)
        return 0;
    add_rules(ctx, allowlist, sizeof(allowlist) / sizeof(allowlist[0]), &n);
    if (syslog)
        add_rules(ctx, syslog_list, sizeof(syslog_list) / sizeof(syslog_list[0]),
                  &n);
    seccomp_release(ctx);
    return n;
}

int vfs_seccomp_install(enum vfs_seccomp_mode mode, bool syslog)
{
    return vfs_seccomp_install_with(mode, syslog, false);
}

int vfs_seccomp_install_with(enum vfs_seccomp_mode mode, bool syslog,
                             bool control_socket)
{
    unsigned int api = seccomp_api_get();
    scmp_filter_ctx ctx;
    uint32_t action;
    unsigned int n = 0;
    int ret;

    if (mode == VFS_SECCOMP_NONE) {
        vfs_warn("seccomp: disabled (--seccomp=none)");
        return 0;
    }
    if (mode == VFS_SECCOMP_LOG) {
        if (api < 3) {
            vfs_err("seccomp: --seccomp=log needs SECCOMP_RET_LOG "
                    "(Linux >= 4.14, libseccomp API level >= 3; have %u)",
                    api);
            return -ENOTSUP;
        }
        action = SCMP_ACT_LOG;
    } else {
        /* Kill the process, not just the thread: a half-dead daemon hangs
         * the guest. Older kernels only know the per-thread kill. */
        action = api >= 3 ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_KILL;
    }

    ctx = seccomp_init(action);
    if (!ctx) {
        vfs_err("seccomp: seccomp_init failed");
        return -ENOMEM;
    }
    /* Threads that already exist get the filter too. */
    ret = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (ret < 0) {
        vfs_err("seccomp: cannot sync threads: %s", strerror(-ret));
        goto out;
    }
    ret = add_rules(ctx, allowlist, sizeof(allowlist) / sizeof(allowlist[0]),
                    &n);
    if (!ret && syslog)
        ret = add_rules(ctx, syslog_list,
                        sizeof(syslog_list) / sizeof(syslog_list[0]), &n);
    if (!ret && control_socket)
        ret = add_rules(ctx, control_list,
                        sizeof(control_list) / sizeof(control_list[0]), &n);
    if (ret < 0)
        goto out;
    ret = seccomp_load(ctx);
    if (ret < 0) {
        vfs_err("seccomp: loading the filter failed: %s", strerror(-ret));
        goto out;
    }
    vfs_debug("seccomp: %u syscalls allowed, others: %s", n,
              mode == VFS_SECCOMP_LOG ? "allowed and logged" : "kill");
out:
    seccomp_release(ctx);
    return ret;
}
