/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The control socket (--control-socket=PATH, CONTROL.md): a unix stream
 * socket served from the daemon's main loop, between vhost-user messages.
 * One command per line in, one JSON object per line out.
 *
 *   control.c      socket, clients, line framing, limits (this header)
 *   control_rpc.c  the commands (ctl_rpc_execute), nothing else: the
 *                  data path never includes control-plane code
 *
 * Everything here runs on the vhost-user (main) thread, so a command never
 * runs concurrently with a queue start/stop or a memory table change.
 *
 * Limits that keep a misbehaving client harmless: at most CTL_MAX_CLIENTS
 * connections (one more is accepted, told so, and closed), lines of at most
 * CTL_LINE_MAX bytes (a longer one is discarded up to its newline and
 * answered with one error), non-blocking I/O, no input read from a client
 * while its previous answers are still unsent, and at most one read per
 * client per main-loop pass, so the vhost-user socket is polled again
 * after every few KiB of control traffic.
 */
#ifndef VFS_CONTROL_H
#define VFS_CONTROL_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>

#include "fuse_virtio.h"

/* Connected clients served at once. */
#define CTL_MAX_CLIENTS 16
/* Longest command line, newline included. */
#define CTL_LINE_MAX 4096
/* pollfds ctl_fill_pollfds() may use: the listener and every client. */
#define CTL_MAX_POLLFDS (1 + CTL_MAX_CLIENTS)
/* Version of the line protocol, reported by "version" and "help". */
#define CTL_PROTOCOL_VERSION 1
/* "mode set pool" without a size, on a queue that never had one. */
#define CTL_DEFAULT_POOL_SIZE 4

struct ctl;

/*
 * Create the listening socket at @path: mode 0600 (umask 0177 around
 * bind), close-on-exec, non-blocking. A stale socket (nobody accepts on
 * it) is replaced; a live one or a non-socket is an error. Returns the fd
 * or -errno (logged).
 */
int ctl_listen(const char *path);

/* Takes @listen_fd. NULL when out of memory. */
struct ctl *ctl_new(int listen_fd);
/* Closes the listener and every client. NULL is fine. */
void ctl_free(struct ctl *ctl);

/* The device commands act on; NULL: they answer an error. */
void ctl_set_dev(struct ctl *ctl, struct fv_dev *dev);

/*
 * Fill @pfd (room for CTL_MAX_POLLFDS) with what to poll now; returns the
 * count. After poll(), hand the same array and count to ctl_handle().
 */
unsigned int ctl_fill_pollfds(struct ctl *ctl, struct pollfd *pfd);
void ctl_handle(struct ctl *ctl, const struct pollfd *pfd, unsigned int n);
/*
 * Timeout for that poll() in ms, -1 for none: after accept() failed for
 * want of fds or memory the listener is left out for a while (it would
 * stay readable and make the loop spin) and must be put back in time.
 */
int ctl_poll_timeout(struct ctl *ctl);

/* Clients connected now (tests, logging). */
unsigned int ctl_num_clients(const struct ctl *ctl);

/*
 * A growing output buffer. Not GString: its header comes from GLib's slice
 * allocator, whose chunks pass between threads in a way ThreadSanitizer
 * cannot follow, and this code reads the fields directly; and GLib aborts
 * where this can just drop a client. After a failed allocation @oom is set
 * and further appends are ignored.
 */
struct ctl_buf {
    char *s;
    size_t len, cap;
    bool oom;
};

void ctl_buf_add(struct ctl_buf *b, const char *s);
void ctl_buf_addc(struct ctl_buf *b, char c);
void ctl_buf_addf(struct ctl_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ctl_buf_free(struct ctl_buf *b);

/* ---- control_rpc.c ---- */

/*
 * Run one command line (no newline, NUL-terminated, at most
 * CTL_LINE_MAX - 1 bytes) against @dev (may be NULL) and append exactly one
 * JSON object plus '\n' to @out. Never fails: a bad command is answered
 * with {"ok":false,"error":"..."}.
 */
void ctl_rpc_execute(struct fv_dev *dev, const char *line,
                     struct ctl_buf *out);

/* Append @s to @out as a JSON string literal (quotes included). */
void ctl_json_string(struct ctl_buf *out, const char *s);

#endif
