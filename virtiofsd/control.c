/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Control socket: listener, clients, line framing (see control.h). The
 * commands themselves are in control_rpc.c.
 *
 * A client is a small state machine driven by the main loop's poll():
 *   - it is polled for input only while it has no unsent output, so a
 *     client that writes commands without reading answers stops itself;
 *   - one recv() of at most a line's worth per pass, then every complete
 *     line in the buffer is run, until the pending output passes
 *     CTL_OUTPUT_HIGH (the rest waits until that is sent);
 *   - a line that does not fit the buffer is answered with one error and
 *     discarded up to its newline; the client stays connected;
 *   - end of input (the client shut down its write side, as `socat` or
 *     `echo cmd | nc -U` do) still runs a last unterminated line and sends
 *     every answer before the socket is closed.
 */
#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* ---- output buffer ---- */

static bool buf_room(struct ctl_buf *b, size_t more)
{
    size_t cap;
    char *s;

    if (b->oom)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    cap = b->cap ? b->cap : 512;
    while (cap < b->len + more + 1)
        cap *= 2;
    s = realloc(b->s, cap);
    if (!s) {
        b->oom = true;
        return false;
    }
    b->s = s;
    b->cap = cap;
    return true;
}

void ctl_buf_add(struct ctl_buf *b, const char *s)
{
    size_t n = strlen(s);

    if (!buf_room(b, n))
        return;
    memcpy(b->s + b->len, s, n + 1);
    b->len += n;
}

void ctl_buf_addc(struct ctl_buf *b, char c)
{
    if (!buf_room(b, 1))
        return;
    b->s[b->len++] = c;
    b->s[b->len] = '\0';
}

void ctl_buf_addf(struct ctl_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !buf_room(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void ctl_buf_free(struct ctl_buf *b)
{
    free(b->s);
    memset(b, 0, sizeof(*b));
}

/* Stop running buffered commands once this much output waits. */
#define CTL_OUTPUT_HIGH (256u * 1024)
/* Connections taken from the backlog per main-loop pass. */
#define CTL_ACCEPT_BURST (2 * CTL_MAX_CLIENTS)
/* Pause after accept() ran out of fds or memory (the listener stays
 * readable: polling it at once again would spin). */
#define CTL_ACCEPT_PAUSE_MS 1000

struct ctl_client {
    int fd;
    size_t in_len;
    bool discarding;        /* inside an over-long line: drop up to '\n' */
    bool eof;               /* no more input: answer, flush, close */
    bool backlog;           /* complete lines wait for output room */
    struct ctl_buf out;
    size_t out_off;         /* bytes of @out already sent */
    char in[CTL_LINE_MAX];
};

struct ctl {
    int lfd;
    uint64_t accept_pause_until;    /* CLOCK_MONOTONIC ns, 0: none */
    struct fv_dev *dev;
    struct ctl_client *clients[CTL_MAX_CLIENTS];
    unsigned int nclients;
    /* client slot of pollfd i (filled by ctl_fill_pollfds), -1: listener */
    int poll_slot[CTL_MAX_POLLFDS];
};

/* ---- listening socket ---- */

/*
 * Is someone accepting on @path? A probe connection is harmless here (a
 * control server takes it as a client that says nothing), unlike on the
 * vhost-user socket.
 */
static bool ctl_path_live(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    bool live;

    if (fd < 0)
        return true;    /* cannot tell: do not remove it */
    live = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ||
           errno == EAGAIN || errno == EINPROGRESS;
    close(fd);
    return live;
}

int ctl_listen(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct stat st;
    mode_t old_umask;
    int fd, err;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        vfs_err("--control-socket: '%s' is too long", path);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            vfs_err("--control-socket: '%s' exists and is not a socket; "
                    "refusing to replace it", path);
            return -EEXIST;
        }
        if (ctl_path_live(&sa)) {
            vfs_err("--control-socket: '%s' is in use", path);
            return -EADDRINUSE;
        }
        vfs_info("removing stale control socket %s", path);
        if (unlink(path) < 0 && errno != ENOENT) {
            err = errno;
            vfs_err("--control-socket: cannot remove '%s': %s", path,
                    strerror(err));
            return -err;
        }
    } else if (errno != ENOENT) {
        err = errno;
        vfs_err("--control-socket: '%s': %s", path, strerror(err));
        return -err;
    }

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        err = errno;
        vfs_err("control socket: %s", strerror(err));
        return -err;
    }
    /* 0600 from the start: no window in which others could connect */
    old_umask = umask(0177);
    err = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? errno : 0;
    umask(old_umask);
    if (err) {
        vfs_err("--control-socket: bind '%s': %s", path, strerror(err));
        close(fd);
        return -err;
    }
    if (listen(fd, CTL_MAX_CLIENTS) < 0) {
        err = errno;
        vfs_err("--control-socket: listen on '%s': %s", path, strerror(err));
        unlink(path);
        close(fd);
        return -err;
    }
    return fd;
}

/* ---- clients ---- */

struct ctl *ctl_new(int listen_fd)
{
    struct ctl *ctl = calloc(1, sizeof(*ctl));

    if (!ctl)
        return NULL;
    ctl->lfd = listen_fd;
    return ctl;
}

void ctl_set_dev(struct ctl *ctl, struct fv_dev *dev)
{
    ctl->dev = dev;
}

unsigned int ctl_num_clients(const struct ctl *ctl)
{
    return ctl->nclients;
}

static void client_close(struct ctl *ctl, unsigned int slot)
{
    struct ctl_client *c = ctl->clients[slot];

    if (!c)
        return;
    close(c->fd);
    ctl_buf_free(&c->out);
    free(c);
    ctl->clients[slot] = NULL;
    ctl->nclients--;
    vfs_debug("control: client %u disconnected", slot);
}

void ctl_free(struct ctl *ctl)
{
    if (!ctl)
        return;
    for (unsigned int i = 0; i < CTL_MAX_CLIENTS; i++)
        client_close(ctl, i);
    if (ctl->lfd >= 0)
        close(ctl->lfd);
    free(ctl);
}

static size_t client_pending(const struct ctl_client *c)
{
    return c->out.len - c->out_off;
}

/* Send what the socket takes now. -errno: the client is gone. */
static int client_flush(struct ctl_client *c)
{
    if (c->out.oom) {
        vfs_warn_ratelimited("control: out of memory; client dropped");
        return -ENOMEM;
    }
    while (client_pending(c)) {
        ssize_t n = send(c->fd, c->out.s + c->out_off, client_pending(c),
                         MSG_DONTWAIT | MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -errno;
        }
        c->out_off += (size_t)n;
    }
    c->out.len = 0;
    c->out_off = 0;
    return 0;
}

static void client_error(struct ctl_client *c, const char *msg);

static void client_run_line(struct ctl *ctl, struct ctl_client *c, char *line,
                            size_t len)
{
    /* commands are text: a NUL would silently cut the line short */
    if (memchr(line, '\0', len)) {
        client_error(c, "NUL byte in the command line");
        return;
    }
    /* tolerate CRLF (telnet-ish clients) and surrounding blanks */
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' ||
                   line[len - 1] == '\t'))
        len--;
    line[len] = '\0';
    while (*line == ' ' || *line == '\t')
        line++;
    if (!*line)
        return;     /* blank lines get no answer */
    ctl_rpc_execute(ctl->dev, line, &c->out);
}

static void client_error(struct ctl_client *c, const char *msg)
{
    ctl_buf_add(&c->out, "{\"ok\":false,\"error\":");
    ctl_json_string(&c->out, msg);
    ctl_buf_add(&c->out, "}\n");
}

/* Run the complete lines in the input buffer (see the top of the file). */
static void client_process(struct ctl *ctl, struct ctl_client *c)
{
    size_t start = 0;

    while (start < c->in_len && client_pending(c) < CTL_OUTPUT_HIGH) {
        char *p = c->in + start;
        char *nl = memchr(p, '\n', c->in_len - start);

        if (!nl)
            break;
        if (c->discarding)
            c->discarding = false;  /* the end of the long line */
        else
            client_run_line(ctl, c, p, (size_t)(nl - p));
        start = (size_t)(nl - c->in) + 1;
    }
    if (start) {
        memmove(c->in, c->in + start, c->in_len - start);
        c->in_len -= start;
    }
    /* held back by the output limit: run the rest once that is sent */
    c->backlog = c->in_len && memchr(c->in, '\n', c->in_len);
    if (c->backlog)
        return;
    if (c->discarding) {
        c->in_len = 0;
    } else if (c->in_len == sizeof(c->in)) {
        vfs_warn_ratelimited("control: command line longer than %d bytes "
                             "discarded", CTL_LINE_MAX - 1);
        client_error(c, "line too long (max 4095 bytes)");
        c->discarding = true;
        c->in_len = 0;
    } else if (c->eof && c->in_len && client_pending(c) < CTL_OUTPUT_HIGH) {
        /* the last command may come without its newline */
        client_run_line(ctl, c, c->in, c->in_len);
        c->in_len = 0;
    }
}

/* One read; false when the client is to be closed now. */
static bool client_read(struct ctl *ctl, struct ctl_client *c)
{
    ssize_t n;

    n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len,
             MSG_DONTWAIT);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return true;
        return false;   /* ECONNRESET: gone mid-command, nothing to answer */
    }
    if (n == 0)
        c->eof = true;
    c->in_len += (size_t)n;
    client_process(ctl, c);
    return true;
}

/* Something to run or send: wait for room in the socket, not for input. */
static bool client_wants_out(const struct ctl_client *c)
{
    return client_pending(c) || c->backlog;
}

/*
 * Handle @revents of client @slot: send, then run held-back commands, or
 * read. Closes the client when it is gone or done.
 */
static void client_event(struct ctl *ctl, unsigned int slot, short revents)
{
    struct ctl_client *c = ctl->clients[slot];

    if (revents & POLLNVAL) {
        client_close(ctl, slot);
        return;
    }
    if ((revents & POLLOUT) || client_wants_out(c)) {
        if (client_flush(c) < 0) {
            client_close(ctl, slot);
            return;
        }
        if (!client_pending(c))
            client_process(ctl, c);
    } else if (revents & (POLLIN | POLLHUP | POLLERR)) {
        /* POLLHUP/POLLERR: the read tells EOF or the error */
        if (!client_read(ctl, c)) {
            client_close(ctl, slot);
            return;
        }
    }
    /* answer at once rather than one poll round later */
    if (client_flush(c) < 0 ||
        (c->eof && !client_wants_out(c) && c->in_len == 0))
        client_close(ctl, slot);
}

/*
 * All slots taken: before refusing a newcomer, look whether some of the
 * connected clients have left (their hang-up may not have been polled yet,
 * e.g. many short-lived clients queued in the backlog).
 */
/*
 * One pollfd per connected client into @pfd, its slot index into @slots;
 * returns how many. Backpressure: no input while answers are unsent.
 */
static unsigned int ctl_client_pollfds(struct ctl *ctl, struct pollfd *pfd,
                                       int *slots)
{
    unsigned int n = 0;

    for (unsigned int i = 0; i < CTL_MAX_CLIENTS; i++) {
        struct ctl_client *c = ctl->clients[i];

        if (!c)
            continue;
        pfd[n] = (struct pollfd){
            .fd = c->fd,
            .events = client_wants_out(c) ? POLLOUT : POLLIN,
        };
        slots[n++] = (int)i;
    }
    return n;
}

static void ctl_reap(struct ctl *ctl)
{
    struct pollfd pfd[CTL_MAX_CLIENTS];
    int slots[CTL_MAX_CLIENTS];
    unsigned int n = ctl_client_pollfds(ctl, pfd, slots);

    if (poll(pfd, n, 0) <= 0)
        return;
    for (unsigned int k = 0; k < n; k++) {
        if (pfd[k].revents && ctl->clients[slots[k]])
            client_event(ctl, slots[k], pfd[k].revents);
    }
}

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void ctl_accept(struct ctl *ctl)
{
    for (unsigned int k = 0; k < CTL_ACCEPT_BURST; k++) {
        struct ctl_client *c = NULL;
        unsigned int slot;
        int fd;

        fd = accept4(ctl->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            /* EMFILE, ENFILE, ENOBUFS, ENOMEM: retry later, do not spin */
            vfs_warn_ratelimited("control: accept: %s; not accepting for "
                                 "%d ms", strerror(errno),
                                 CTL_ACCEPT_PAUSE_MS);
            ctl->accept_pause_until = mono_ns() +
                                      CTL_ACCEPT_PAUSE_MS * 1000000ull;
            return;
        }
        if (ctl->nclients == CTL_MAX_CLIENTS)
            ctl_reap(ctl);
        for (slot = 0; slot < CTL_MAX_CLIENTS; slot++) {
            if (!ctl->clients[slot])
                break;
        }
        if (slot < CTL_MAX_CLIENTS)
            c = calloc(1, sizeof(*c));
        if (!c) {
            static const char busy[] =
                "{\"ok\":false,\"error\":\"too many control clients\"}\n";

            vfs_warn_ratelimited("control: %u clients connected; refusing "
                                 "another", ctl->nclients);
            /* best effort: the socket buffer of a new connection is empty */
            if (send(fd, busy, sizeof(busy) - 1,
                     MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
                vfs_debug("control: refusal not sent: %s", strerror(errno));
            close(fd);
            continue;
        }
        c->fd = fd;
        ctl->clients[slot] = c;
        ctl->nclients++;
        vfs_debug("control: client %u connected", slot);
    }
}

int ctl_poll_timeout(struct ctl *ctl)
{
    uint64_t now;

    if (!ctl->accept_pause_until)
        return -1;
    now = mono_ns();
    if (now >= ctl->accept_pause_until) {
        ctl->accept_pause_until = 0;
        return -1;
    }
    return (int)((ctl->accept_pause_until - now) / 1000000) + 1;
}

unsigned int ctl_fill_pollfds(struct ctl *ctl, struct pollfd *pfd)
{
    unsigned int n = 0;

    /* a negative fd is skipped by poll(): the pause after accept errors */
    pfd[n] = (struct pollfd){
        .fd = ctl_poll_timeout(ctl) < 0 ? ctl->lfd : -1,
        .events = POLLIN,
    };
    ctl->poll_slot[n++] = -1;
    n += ctl_client_pollfds(ctl, pfd + n, ctl->poll_slot + n);
    return n;
}

void ctl_handle(struct ctl *ctl, const struct pollfd *pfd, unsigned int n)
{
    bool accept_ready = false;

    for (unsigned int k = 0; k < n && k < CTL_MAX_POLLFDS; k++) {
        int slot = ctl->poll_slot[k];
        struct ctl_client *c;

        if (!pfd[k].revents)
            continue;
        if (slot < 0) {
            accept_ready = pfd[k].revents & POLLIN;
            continue;
        }
        c = ctl->clients[slot];
        if (c && c->fd == pfd[k].fd)
            client_event(ctl, (unsigned int)slot, pfd[k].revents);
    }
    /*
     * Last: clients that left in this round have freed their slots, so a
     * client that connects right after another one closed is not refused.
     */
    if (accept_ready)
        ctl_accept(ctl);
}
