/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_seccomp: with --seccomp=kill a syscall outside the allowlist kills
 * the whole process with SIGSYS while the daemon's own work survives --
 * a GThreadPool growing to 16 threads that each malloc in an arena of
 * their own (more than glibc's 8 before it sizes the arena limit), that
 * unshare(CLONE_FS), switch credentials and sleep,
 * then shrinking to one thread and growing again; --seccomp=log lets the
 * same syscall through; --seccomp=none installs nothing. ioctl is allowed
 * for TCGETS (isatty) only.
 */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "cli_helpers.h"
#include "vfs_seccomp.h"

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

static bool status_is(int st, bool signaled, int code)
{
    if (signaled ? (WIFSIGNALED(st) && WTERMSIG(st) == code)
                 : (WIFEXITED(st) && WEXITSTATUS(st) == code))
        return true;
    fprintf(stderr, "  child status: %s %d, want %s %d\n",
            WIFEXITED(st) ? "exit" : "signal",
            WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
            signaled ? "signal" : "exit", code);
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

static int seccomp_status(void)
{
    char *s = cli_slurp("/proc/self/status");
    char *p = strstr(s, "\nSeccomp:");
    int v = -1;

    if (p)
        sscanf(p + 9, "%d", &v);
    free(s);
    return v;
}

/* A syscall the daemon never makes. */
static long forbidden(void)
{
    struct utsname u;

    return syscall(SYS_uname, &u);
}

struct mode_arg {
    enum vfs_seccomp_mode mode;
};

static int child_forbidden(void *opaque)
{
    struct mode_arg *a = opaque;

    REQUIRE(vfs_seccomp_install(a->mode, false) == 0, 10);
    REQUIRE(seccomp_status() == (a->mode == VFS_SECCOMP_NONE ? 0 : 2), 11);
    REQUIRE(getpid() > 0, 12);
    REQUIRE(forbidden() == 0, 13);  /* kill mode dies here */
    return 0;
}

static int child_ioctl(void *opaque)
{
    struct termios t;
    int pfd[2], n;

    REQUIRE(pipe(pfd) == 0, 10);
    REQUIRE(vfs_seccomp_install(VFS_SECCOMP_KILL, false) == 0, 11);
    /* isatty() on a pipe: ENOTTY, not death */
    REQUIRE(ioctl(pfd[0], TCGETS, &t) < 0 && errno == ENOTTY, 12);
    ioctl(pfd[0], FIONREAD, &n);    /* dies here */
    return 0;
}

/* ---- the daemon's thread work under the filter ---- */

static gint tasks_done;

static void task(gpointer data, gpointer user)
{
    /* what a FUSE worker does: its own fs context, malloc, creds, sleep */
    static __thread bool unshared;
    void *blocks[16];

    if (!unshared) {
        if (unshare(CLONE_FS) < 0)
            abort();
        unshared = true;
    }
    for (int i = 0; i < 16; i++)
        blocks[i] = g_malloc(64 << i);   /* up to 2 MiB: mmap too */
    for (int i = 0; i < 16; i++)
        g_free(blocks[i]);
    if (geteuid() == 0) {
        /* thread-scoped credential switch, as passthrough does it */
        if (syscall(SYS_setresgid, -1, 65534, -1) < 0 ||
            syscall(SYS_setresgid, -1, 0, -1) < 0)
            abort();
    }
    umask(022);
    g_usleep(2000);
    g_atomic_int_inc(&tasks_done);
}

static void wait_tasks(int n)
{
    for (int i = 0; i < 5000 && g_atomic_int_get(&tasks_done) < n; i++)
        g_usleep(1000);
}

static void *plain_thread(void *arg)
{
    free(malloc(1000));
    return arg;
}

static int child_threads(void *opaque)
{
    GThreadPool *pool;
    static int token;
    pthread_t t;
    void *ret;
    int efd;

    REQUIRE(vfs_seccomp_install(VFS_SECCOMP_KILL, false) == 0, 10);

    REQUIRE(pthread_create(&t, NULL, plain_thread, &token) == 0, 11);
    REQUIRE(pthread_join(t, &ret) == 0 && ret == &token, 12);

    /* an eventfd and a mapping, as the rings use them */
    efd = eventfd(0, EFD_CLOEXEC);
    REQUIRE(efd >= 0 && eventfd_write(efd, 1) == 0, 13);
    close(efd);
    {
        void *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

        REQUIRE(m != MAP_FAILED && munmap(m, 1 << 20) == 0, 14);
    }

    pool = g_thread_pool_new(task, NULL, 16, FALSE, NULL);
    REQUIRE(pool, 15);
    for (int i = 0; i < 64; i++)
        g_thread_pool_push(pool, GINT_TO_POINTER(i + 1), NULL);
    wait_tasks(64);
    REQUIRE(g_atomic_int_get(&tasks_done) == 64, 16);
    /* the pool really grew past 8 threads */
    REQUIRE(g_thread_pool_get_num_threads(pool) > 8, 19);

    /* shrink: surplus threads exit */
    g_thread_pool_set_max_threads(pool, 1, NULL);
    g_thread_pool_set_max_unused_threads(0);
    g_thread_pool_stop_unused_threads();
    g_usleep(100000);
    for (int i = 0; i < 8; i++)
        g_thread_pool_push(pool, GINT_TO_POINTER(i + 1), NULL);
    wait_tasks(72);
    REQUIRE(g_atomic_int_get(&tasks_done) == 72, 17);

    /* grow again */
    g_thread_pool_set_max_threads(pool, 6, NULL);
    for (int i = 0; i < 32; i++)
        g_thread_pool_push(pool, GINT_TO_POINTER(i + 1), NULL);
    g_thread_pool_free(pool, FALSE, TRUE);
    REQUIRE(g_atomic_int_get(&tasks_done) == 104, 18);

    /* still filtered: the forbidden call kills us */
    forbidden();
    return 0;
}

int main(void)
{
    struct mode_arg kill_mode = { VFS_SECCOMP_KILL };
    struct mode_arg log_mode = { VFS_SECCOMP_LOG };
    struct mode_arg none_mode = { VFS_SECCOMP_NONE };

    CHECK(vfs_seccomp_allowlist_size(false) > 50);
    CHECK(vfs_seccomp_allowlist_size(true) > vfs_seccomp_allowlist_size(false));

    fprintf(stderr, "== kill\n");
    CHECK(status_is(in_child(child_forbidden, &kill_mode), true, SIGSYS));
    fprintf(stderr, "== log\n");
    CHECK(status_is(in_child(child_forbidden, &log_mode), false, 0));
    fprintf(stderr, "== none\n");
    CHECK(status_is(in_child(child_forbidden, &none_mode), false, 0));
    fprintf(stderr, "== ioctl\n");
    CHECK(status_is(in_child(child_ioctl, NULL), true, SIGSYS));
    fprintf(stderr, "== thread pool growth and shrink\n");
    CHECK(status_is(in_child(child_threads, NULL), true, SIGSYS));

    if (!cli_failures)
        printf("ok\n");
    return cli_result();
}
