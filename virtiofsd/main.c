/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtiofsd: parse options, set up the vhost-user socket, confine the
 * process, then serve one frontend connection until it goes away.
 *
 * Order of startup, and why:
 *   1. options, logging (syslog connected now: /dev/log is unreachable
 *      once sandboxed), RLIMIT_NOFILE (passthrough holds an fd per inode)
 *   2. the control socket (--control-socket, mode 0600): before the
 *      sandbox, which hides its path; the listening fd survives it. Then
 *      the vhost-user listening socket (--socket-path) or the inherited
 *      --fd. Control clients that connect now wait in the backlog until
 *      the main loop runs (7).
 *   3. --daemonize: the socket already listens, so QEMU may connect as
 *      soon as the parent returns (the kernel queues it; backlog 1)
 *   4. accept ONE connection, close the listener. As upstream, the
 *      accept happens before the sandbox: the pivoted process cannot see
 *      the socket path, and seccomp does not need accept().
 *   5. sandbox (namespace: fork, we continue as pid 1 inside), drop
 *      capabilities, seccomp -- all before the first thread exists
 *   6. a thread that turns SIGTERM/SIGINT/SIGHUP into shutdown() of the
 *      connection, so the serve loop ends the same way as a disconnect
 *      (until then those signals are blocked but while waiting in 4)
 *   7. passthrough + device, then the main loop: poll() the vhost-user
 *      socket and the control socket; frontend disconnect => exit 0
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>
#include <linux/fuse.h>

#include "config.h"
#include "control.h"
#include "fuse_virtio.h"
#include "log.h"
#include "options.h"
#include "passthrough.h"
#include "sandbox.h"
#include "trace_control.h"
#include "vfs_seccomp.h"

/* hiprio + this many request queues are offered to the frontend */
#define VFS_MAX_REQUEST_QUEUES 16

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
}

static const int term_signals[] = { SIGTERM, SIGINT, SIGHUP };

/*
 * The termination signals get a handler that only records them (pid 1 of
 * the namespace would ignore them at SIG_DFL) and stay blocked: until the
 * signal thread takes over they are only let in while we wait in ppoll()
 * for the frontend, so a signal arriving just before that wait is not
 * lost, and one arriving during setup stays pending for the thread.
 */
static void install_signal_handlers(void)
{
    struct sigaction sa;
    sigset_t set;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof(term_signals) / sizeof(term_signals[0]); i++) {
        sigaction(term_signals[i], &sa, NULL);
        sigaddset(&set, term_signals[i]);
    }
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    /* A frontend that vanished must be an EPIPE, not a dead daemon. */
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

/* ------------------------------------------------------------------ */
/* RLIMIT_NOFILE                                                       */

static int read_file_max(unsigned long long *out)
{
    FILE *f = fopen("/proc/sys/fs/file-max", "re");
    int ok;

    if (!f)
        return -errno;
    ok = fscanf(f, "%llu", out) == 1;
    fclose(f);
    return ok ? 0 : -EINVAL;
}

/*
 * As upstream: --rlimit-nofile=N sets soft and hard limit to N (0 leaves
 * them); by default raise to min(1000000, fs.file-max - 16384) if the
 * current soft limit is lower, keeping 16384 fds for the rest of the host.
 */
static int setup_rlimit_nofile(const struct vfs_options *o)
{
    const unsigned long long reserve = 16384, cap = 1000000;
    unsigned long long file_max, target;
    struct rlimit rl;

    if (o->rlimit_nofile_set) {
        if (o->rlimit_nofile == 0)
            return 0;
        rl.rlim_cur = rl.rlim_max = o->rlimit_nofile;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            vfs_err("--rlimit-nofile=%llu: setrlimit: %s",
                    (unsigned long long)o->rlimit_nofile, strerror(errno));
            return -errno;
        }
        return 0;
    }
    if (read_file_max(&file_max) < 0 || file_max <= reserve) {
        vfs_warn("cannot derive a file limit from fs.file-max; "
                 "RLIMIT_NOFILE left as it is");
        return 0;
    }
    target = file_max - reserve < cap ? file_max - reserve : cap;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    if (rl.rlim_cur >= target)
        return 0;
    {
        struct rlimit want = { .rlim_cur = target, .rlim_max = target };

        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max > target)
            want.rlim_max = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &want) == 0) {
            vfs_debug("RLIMIT_NOFILE raised to %llu", target);
            return 0;
        }
    }
    /* Unprivileged: the hard limit is as far as we may go. */
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* Upstream carries on silently; say it once, it is not an error. */
    vfs_info("could not raise RLIMIT_NOFILE to %llu (now %llu): large "
             "trees may run out of fds", target,
             (unsigned long long)rl.rlim_cur);
    return 0;
}

/* ------------------------------------------------------------------ */
/* The vhost-user socket                                               */

/* "/dir/name" for @path, directory resolved; NULL if it cannot be. */
static char *absolute_socket_path(const char *path)
{
    char *d = strdup(path), *b = strdup(path), *res = NULL;
    char dir[PATH_MAX];

    if (d && b && realpath(dirname(d), dir)) {
        const char *base = basename(b);

        if (asprintf(&res, "%s/%s", strcmp(dir, "/") ? dir : "", base) < 0)
            res = NULL;
    }
    free(d);
    free(b);
    return res;
}

/*
 * Is a listening socket bound to @path (in our net namespace)? Read from
 * /proc/net/unix rather than by connecting: a probe connection would be
 * accepted by the other daemon as its one and only frontend.
 */
static bool unix_path_listening(const char *path)
{
    char *abs = absolute_socket_path(path);
    char line[PATH_MAX + 128];
    bool found = false;
    FILE *f;

    f = fopen("/proc/net/unix", "re");
    if (!f) {
        free(abs);
        return false;
    }
    while (!found && fgets(line, sizeof(line), f)) {
        unsigned int flags;
        int off = -1;
        size_t len;

        /* Num RefCount Protocol Flags Type St Inode Path */
        if (sscanf(line, "%*s %*x %*x %x %*x %*x %*u %n", &flags, &off) < 1 ||
            off < 0)
            continue;
        len = strlen(line + off);
        if (len && line[off + len - 1] == '\n')
            line[off + --len] = '\0';
        if (!(flags & 0x10000))     /* __SO_ACCEPTCON: listening */
            continue;
        found = !strcmp(line + off, path) || (abs && !strcmp(line + off, abs));
    }
    fclose(f);
    free(abs);
    return found;
}

static int lookup_group(const char *name, gid_t *gid)
{
    struct group *g = getgrnam(name);
    char *end;
    unsigned long v;

    if (g) {
        *gid = g->gr_gid;
        return 0;
    }
    errno = 0;
    v = strtoul(name, &end, 10);
    if (name[0] >= '0' && name[0] <= '9' && !*end && !errno && v < UINT_MAX &&
        getgrgid((gid_t)v)) {
        *gid = (gid_t)v;
        return 0;
    }
    return -ENOENT;
}

/*
 * Mode 0700 (0770 and the group with --socket-group), as upstream. A
 * stale socket left by a dead daemon is replaced (upstream does the
 * same); a live one, or anything that is not a socket, is an error.
 */
static int create_listen_socket(const char *path, const char *group)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char tmp[sizeof(sa.sun_path) + 32];
    struct stat st;
    gid_t gid = 0;
    mode_t old_umask;
    int fd, err;

    if (group && lookup_group(group, &gid) < 0) {
        vfs_err("--socket-group: unknown group '%s'", group);
        return -ENOENT;
    }
    if (strlen(path) >= sizeof(sa.sun_path)) {
        vfs_err("--socket-path: '%s' is too long", path);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);

    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            vfs_err("--socket-path: '%s' exists and is not a socket; "
                    "refusing to replace it", path);
            return -EEXIST;
        }
        if (unix_path_listening(path)) {
            vfs_err("--socket-path: '%s' is in use (another process "
                    "listens on it)", path);
            return -EADDRINUSE;
        }
        vfs_info("removing stale socket %s", path);
        if (unlink(path) < 0 && errno != ENOENT) {
            err = errno;
            vfs_err("--socket-path: cannot remove stale '%s': %s", path,
                    strerror(err));
            return -err;
        }
    } else if (errno != ENOENT) {
        err = errno;
        vfs_err("--socket-path: '%s': %s", path, strerror(err));
        return -err;
    }

    /*
     * Bound and listening under a temporary name, then renamed into place:
     * a frontend that connects as soon as the path appears (a management
     * tool waiting for it) is never refused between bind() and listen().
     * A path too long for the temporary name is bound directly.
     */
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%ld~", path, (long)getpid()) <
        sizeof(sa.sun_path))
        strcpy(sa.sun_path, tmp);
    else
        strcpy(tmp, path);
    unlink(tmp);        /* a leftover of a crashed run with our pid */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err = errno;
        vfs_err("socket: %s", strerror(err));
        return -err;
    }
    old_umask = umask(0077);
    err = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? errno : 0;
    umask(old_umask);
    if (err) {
        vfs_err("--socket-path: bind '%s': %s", tmp, strerror(err));
        close(fd);
        return -err;
    }
    if (group && (chown(tmp, (uid_t)-1, gid) < 0 || chmod(tmp, 0770) < 0)) {
        err = errno;
        vfs_err("--socket-group: cannot give '%s' to group %s: %s", path,
                group, strerror(err));
        goto fail_unlink;
    }
    /* One frontend; a second connect waits in vain rather than queueing. */
    if (listen(fd, 1) < 0) {
        err = errno;
        vfs_err("listen on '%s': %s", path, strerror(err));
        goto fail_unlink;
    }
    if (strcmp(tmp, path) && rename(tmp, path) < 0) {
        err = errno;
        vfs_err("--socket-path: cannot move '%s' to '%s': %s", tmp, path,
                strerror(err));
        goto fail_unlink;
    }
    return fd;

fail_unlink:
    unlink(tmp);
    close(fd);
    return -err;
}

/*
 * Wait for the frontend. --fd may be a listening socket (socket
 * activation, libvirt) or an already connected one.
 */
static int accept_frontend(int lfd, bool is_listener)
{
    struct pollfd pfd = { .fd = lfd, .events = POLLIN };
    sigset_t waitmask;
    int fd;

    if (!is_listener)
        return lfd;
    pthread_sigmask(SIG_SETMASK, NULL, &waitmask);
    for (size_t i = 0; i < sizeof(term_signals) / sizeof(term_signals[0]); i++)
        sigdelset(&waitmask, term_signals[i]);
    vfs_info("waiting for vhost-user socket connection...");
    for (;;) {
        if (ppoll(&pfd, 1, NULL, &waitmask) < 0) {
            if (errno == EINTR && got_signal)
                return -EINTR;
            if (errno == EINTR)
                continue;
            vfs_err("poll on the listening socket: %s", strerror(errno));
            return -errno;
        }
        fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            break;
        if (errno != EINTR && errno != ECONNABORTED && errno != EAGAIN) {
            int err = errno;

            vfs_err("accept: %s", strerror(err));
            return -err;
        }
    }
    close(lfd);
    return fd;
}

static bool socket_is_listening(int fd)
{
    int v = 0;
    socklen_t len = sizeof(v);

    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v;
}

/* ------------------------------------------------------------------ */
/* --daemonize                                                         */

/*
 * The socket listens already, so the parent can return at once and a
 * script may start QEMU right after us. stdin/stdout go to /dev/null;
 * stderr too if it is a terminal (else it is probably a log file the
 * caller redirected, and errors belong there).
 */
static int daemonize(void)
{
    pid_t pid;
    int null;

    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        vfs_err("--daemonize: fork: %s", strerror(errno));
        return -errno;
    }
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        vfs_warn("--daemonize: setsid: %s", strerror(errno));
    if (chdir("/") < 0)
        vfs_warn("--daemonize: chdir /: %s", strerror(errno));
    null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        if (isatty(STDERR_FILENO))
            dup2(null, STDERR_FILENO);
        if (null > STDERR_FILENO)
            close(null);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* SIGTERM while serving                                               */

struct sig_thread {
    pthread_t tid;
    pthread_mutex_t lock;
    int sock;           /* -1 once the serve loop is over */
    int signo;          /* the signal that ended the run, 0 if none */
    sigset_t set;
};

static void *sig_thread_fn(void *opaque)
{
    struct sig_thread *st = opaque;
    int sig;

    pthread_setname_np(pthread_self(), "vfs-signal");
    if (sigwait(&st->set, &sig) != 0)
        return NULL;
    pthread_mutex_lock(&st->lock);
    st->signo = sig;
    /* The serve loop reads EOF and ends as if the frontend had left. */
    if (st->sock >= 0) {
        vfs_info("signal %d (%s): shutting down", sig, strsignal(sig));
        shutdown(st->sock, SHUT_RDWR);
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

/* Called with term_signals blocked: a pending one reaches sigwait. */
static int sig_thread_start(struct sig_thread *st, int sock)
{
    int ret;

    st->sock = sock;
    st->signo = 0;
    pthread_mutex_init(&st->lock, NULL);
    sigemptyset(&st->set);
    for (size_t i = 0; i < sizeof(term_signals) / sizeof(term_signals[0]); i++)
        sigaddset(&st->set, term_signals[i]);
    ret = pthread_create(&st->tid, NULL, sig_thread_fn, st);
    if (ret) {
        vfs_err("signal thread: %s", strerror(ret));
        return -ret;
    }
    return 0;
}

/* After serving: returns the signal that ended it, or 0. */
static int sig_thread_stop(struct sig_thread *st)
{
    int sig;

    pthread_mutex_lock(&st->lock);
    st->sock = -1;
    sig = st->signo;
    pthread_mutex_unlock(&st->lock);
    if (!sig) {
        /* Wake it so it can be joined; it sees sock == -1 and leaves. */
        pthread_kill(st->tid, SIGTERM);
    }
    pthread_join(st->tid, NULL);
    pthread_mutex_destroy(&st->lock);
    return sig;
}

/* ------------------------------------------------------------------ */
/* -V                                                                  */

struct init_probe {
    uint32_t major, minor;
    bool replied;
};

static ssize_t probe_writev(int fd, struct iovec *iov, int count, void *opaque)
{
    struct init_probe *p = opaque;
    unsigned char buf[sizeof(struct fuse_out_header) + 2 * sizeof(uint32_t)];
    size_t have = 0, total = 0;

    for (int i = 0; i < count; i++) {
        size_t n = iov[i].iov_len;

        total += n;
        if (have < sizeof(buf)) {
            n = n < sizeof(buf) - have ? n : sizeof(buf) - have;
            memcpy(buf + have, iov[i].iov_base, n);
            have += n;
        }
    }
    if (have == sizeof(buf)) {
        memcpy(&p->major, buf + sizeof(struct fuse_out_header), 4);
        memcpy(&p->minor, buf + sizeof(struct fuse_out_header) + 4, 4);
        p->replied = true;
    }
    return (ssize_t)total;
}

static ssize_t probe_read(int fd, void *buf, size_t len, void *opaque)
{
    return 0;
}

/*
 * The FUSE protocol version is libfuse's (it answers INIT), and libfuse
 * does not export it; fuse_lowlevel_version() prints it but also runs
 * fusermount3. So ask it: one INIT through a session with no transport.
 */
static int fuse_protocol_version(uint32_t *major, uint32_t *minor)
{
    static const struct fuse_custom_io io = {
        .writev = probe_writev,
        .read = probe_read,
    };
    static const struct fuse_lowlevel_ops no_ops;
    char *argv[] = { (char *)"virtiofsd", NULL };
    struct fuse_args args = FUSE_ARGS_INIT(1, argv);
    struct {
        struct fuse_in_header in;
        struct fuse_init_in init;
    } req;
    struct fuse_buf fbuf = { .mem = &req, .size = sizeof(req) };
    struct init_probe p = { 0 };
    struct fuse_session *se;
    int fd;

    se = fuse_session_new(&args, &no_ops, sizeof(no_ops), &p);
    fuse_opt_free_args(&args);
    if (!se)
        return -ENOMEM;
    fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0 || fuse_session_custom_io(se, &io, fd) < 0) {
        if (fd >= 0)
            close(fd);
        fuse_session_destroy(se);
        return -EIO;
    }
    memset(&req, 0, sizeof(req));
    req.in.len = sizeof(req);
    req.in.opcode = FUSE_INIT;
    req.in.unique = 1;
    req.init.major = FUSE_KERNEL_VERSION;
    req.init.minor = FUSE_KERNEL_MINOR_VERSION;
    /* The reply reaches probe_writev, with the session userdata (&p). */
    fuse_session_process_buf(se, &fbuf);
    fuse_session_destroy(se);
    if (!p.replied)
        return -EIO;
    *major = p.major;
    *minor = p.minor;
    return 0;
}

/* ------------------------------------------------------------------ */
/* The main loop                                                       */

/*
 * fv_dev_serve() with the control socket beside it. One vhost-user
 * message per pass, then whatever control work is ready (bounded per
 * pass, control.h), so neither side can starve the other; the queues run
 * on their own threads throughout. Ends like fv_dev_serve(): 0 when the
 * frontend disconnects (or the signal thread shut the socket down).
 */
static int serve(struct fv_dev *dev, int sock, struct ctl *ctl)
{
    struct pollfd pfd[1 + CTL_MAX_POLLFDS];
    int r;

    r = fv_dev_connect(dev, sock);
    if (r < 0)
        return r;
    for (;;) {
        unsigned int n = 1;

        pfd[0] = (struct pollfd){ .fd = sock, .events = POLLIN };
        if (ctl)
            n += ctl_fill_pollfds(ctl, pfd + 1);
        if (poll(pfd, n, ctl ? ctl_poll_timeout(ctl) : -1) < 0) {
            if (errno == EINTR)
                continue;
            r = -errno;
            vfs_err("main loop: poll: %s", strerror(errno));
            break;
        }
        /* POLLHUP/POLLERR too: the read reports the disconnect */
        if (pfd[0].revents) {
            r = fv_dev_process_msg(dev);
            if (r < 0)
                break;
        }
        if (ctl)
            ctl_handle(ctl, pfd + 1, n - 1);
    }
    return fv_dev_disconnect(dev, r);
}

/* ------------------------------------------------------------------ */

static enum lo_cache_mode lo_cache(enum vfs_cache_mode m)
{
    switch (m) {
    case VFS_CACHE_NONE: return LO_CACHE_NONE;
    case VFS_CACHE_ALWAYS: return LO_CACHE_ALWAYS;
    case VFS_CACHE_AUTO: break;
    }
    return LO_CACHE_AUTO;
}

static int run(struct vfs_options *o, const char *source)
{
    struct vfs_sandbox sb;
    struct sig_thread st;
    struct lo_config lcfg;
    struct fv_config fcfg;
    struct lo_data *lo = NULL;
    struct fv_dev *dev = NULL;
    struct ctl *ctl = NULL;
    int lfd, sock, ret, sig, ctl_fd = -1;

    if (setup_rlimit_nofile(o) < 0)
        return 1;

    /* first: it must exist by the time a frontend can connect */
    if (o->control_socket) {
        ctl_fd = ctl_listen(o->control_socket);
        if (ctl_fd < 0)
            return 1;
        vfs_info("control socket %s", o->control_socket);
    }
    if (o->socket_path) {
        lfd = create_listen_socket(o->socket_path, o->socket_group);
        if (lfd < 0)
            return 1;
    } else {
        lfd = o->fd;
        if (fcntl(lfd, F_SETFD, FD_CLOEXEC) < 0) {
            vfs_err("--fd=%d: %s", lfd, strerror(errno));
            return 1;
        }
    }
    if (o->daemonize && daemonize() < 0)
        return 1;

    sock = accept_frontend(lfd, socket_is_listening(lfd));
    if (sock == -EINTR) {
        vfs_info("signal %d while waiting for the frontend: exiting",
                 (int)got_signal);
        return 0;
    }
    if (sock < 0)
        return 1;
    vfs_info("frontend connected");

    if (vfs_sandbox_enter(o->sandbox, source, &sb) < 0)
        return 1;
    if (vfs_sandbox_drop_caps(o->modcaps_add, o->modcaps_drop) < 0)
        return 1;
    if (vfs_seccomp_install_with(o->seccomp, o->syslog, ctl_fd >= 0) < 0)
        return 1;

    /*
     * The termination signals are still blocked (install_signal_handlers),
     * so every thread from here on inherits that; one thread waits for
     * them. One that came during setup is pending and reaches it.
     */
    if (sig_thread_start(&st, sock) < 0)
        return 1;

    memset(&lcfg, 0, sizeof(lcfg));
    lcfg.root = sb.root;
    lcfg.proc_self_fd = sb.proc_self_fd;
    lcfg.cache = lo_cache(o->cache);
    lcfg.timeout = o->timeout;
    lcfg.timeout_set = o->timeout_set;
    lcfg.xattr = o->xattr;
    lcfg.posix_lock = o->posix_lock;
    lcfg.flock = o->flock;
    lcfg.writeback = o->writeback;
    lcfg.allow_direct_io = o->allow_direct_io;
    lcfg.readdirplus = o->readdirplus;
    lcfg.announce_submounts = o->announce_submounts;
    lcfg.killpriv_v2 = o->killpriv_v2;
    lcfg.read_reply = fv_reply_read_fd;
    lcfg.write_data = fv_write_data;
    lo = lo_data_new(&lcfg);
    if (!lo) {
        vfs_err("cannot open the shared directory %s: %s", source,
                strerror(errno));
        ret = 1;
        close(sock);
        goto out;
    }

    memset(&fcfg, 0, sizeof(fcfg));
    fcfg.thread_pool_size = o->thread_pool_size;
    if (o->queue_mode != VFS_QUEUE_MODE_DEFAULT) {
        fcfg.queue_mode_set = true;
        fcfg.queue_mode = o->queue_mode == VFS_QUEUE_MODE_INLINE ? FV_MODE_INLINE
                          : o->queue_mode == VFS_QUEUE_MODE_POOL ? FV_MODE_POOL
                          : FV_MODE_AUTO;
        /* an explicit pool or auto without a size gets the control default */
        if (o->queue_mode != VFS_QUEUE_MODE_INLINE && !fcfg.thread_pool_size)
            fcfg.thread_pool_size = CTL_DEFAULT_POOL_SIZE;
    }
    fcfg.pool_sched = o->pool_sched;
    fcfg.auto_slow_us = o->auto_slow_us;
    fcfg.max_request_queues = VFS_MAX_REQUEST_QUEUES;
    fcfg.stats = o->stats;
    fcfg.write_in_place = true;     /* lcfg.write_data = fv_write_data */
    dev = fv_dev_new(&fcfg, &lo_ops, sizeof(lo_ops), lo);
    if (!dev) {
        vfs_err("cannot create the virtio-fs device: %s", strerror(errno));
        ret = 1;
        close(sock);
        goto out;
    }
    if (ctl_fd >= 0) {
        ctl = ctl_new(ctl_fd);
        if (!ctl) {
            vfs_err("control socket: out of memory");
            ret = 1;
            close(sock);
            goto out;
        }
        ctl_fd = -1;
        ctl_set_dev(ctl, dev);
    }
    /* Takes @sock: closed when the connection ends. */
    ret = serve(dev, sock, ctl) < 0 ? 1 : 0;
out:
    sig = sig_thread_stop(&st);
    if (sig) {
        vfs_info("exiting on signal %d", sig);
        ret = 0;
    } else if (!ret) {
        vfs_info("frontend disconnected: exiting");
    }
    /* clients see EOF; the path stays (the sandbox hides it from us) */
    ctl_free(ctl);
    if (ctl_fd >= 0)
        close(ctl_fd);
    fv_dev_free(dev);
    if (lo)
        lo_data_free(lo);
    close(sb.proc_self_fd);
    return ret;
}

int main(int argc, char **argv)
{
    struct vfs_options opts;
    char err[512];
    char *source = NULL, *desc;
    int ret;

    /*
     * A request record holds a WRITE's arguments (up to FV_MAX_IN_SIZE):
     * keep such blocks in the heap instead of an mmap()/munmap() and fresh
     * page faults per request (128K WRITE, depth 16: +15 % req/s), and do
     * not hand the heap's top back between requests.
     */
    mallopt(M_MMAP_THRESHOLD, 2 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 8 * 1024 * 1024);
    vfs_options_init(&opts);
    if (vfs_options_parse(&opts, argc, argv, err, sizeof(err)) < 0) {
        fprintf(stderr, "virtiofsd: %s\n", err);
        vfs_options_free(&opts);
        return 1;
    }
    if (opts.help) {
        vfs_options_print_help(stdout, argv[0]);
        vfs_options_free(&opts);
        return 0;
    }
    if (opts.version) {
        uint32_t major, minor;

        vfs_options_print_version(stdout);
        if (fuse_protocol_version(&major, &minor) == 0)
            printf("using FUSE kernel interface version %u.%u\n", major, minor);
        vfs_options_free(&opts);
        return 0;
    }
    if (opts.print_capabilities) {
        vfs_options_print_capabilities(stdout);
        vfs_options_free(&opts);
        return 0;
    }
    if (vfs_options_check(&opts, err, sizeof(err)) < 0) {
        fprintf(stderr, "virtiofsd: %s\n", err);
        vfs_options_free(&opts);
        return 1;
    }

    vfs_log_set_level(vfs_options_log_level(&opts));
    /* before any thread runs, so the first request is already traced */
    if (trace_enable_list(opts.trace, err, sizeof(err)) < 0) {
        fprintf(stderr, "virtiofsd: %s\n", err);
        vfs_options_free(&opts);
        return 1;
    }
    if (opts.syslog) {
        vfs_log_use_syslog(true);
        /* Connect to /dev/log now: the sandbox will hide it. */
        openlog("virtiofsd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    }
    /* Sandboxes and --daemonize change the cwd: keep an absolute path. */
    source = realpath(opts.source, NULL);
    if (!source) {
        fprintf(stderr, "virtiofsd: -o source: '%s': %s\n", opts.source,
                strerror(errno));
        vfs_options_free(&opts);
        return 1;
    }
    free(opts.source);
    opts.source = strdup(source);
    desc = vfs_options_describe(&opts);
    vfs_info("virtiofsd-instrumented %s: %s", VFS_VERSION,
             desc ? desc : "(options)");
    free(desc);

    install_signal_handlers();
    ret = run(&opts, source);
    free(source);
#ifdef __SANITIZE_ADDRESS__
    /*
     * LeakSanitizer's exit-time scan reads /proc/self/task, which the
     * namespace and chroot sandboxes hide: it would fail and take the
     * exit status (or hang). Sanitizer builds skip it there.
     */
    if (opts.sandbox != VFS_SANDBOX_NONE) {
        vfs_options_free(&opts);
        fflush(NULL);
        _exit(ret);
    }
#endif
    vfs_options_free(&opts);
    return ret;
}
