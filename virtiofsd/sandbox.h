/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Confinement of the serving process, in the order main.c applies it:
 *
 *   vfs_sandbox_enter()     namespaces + pivot_root / chroot / nothing
 *   vfs_sandbox_drop_caps() capabilities down to what passthrough needs,
 *                           bounding set too; PR_SET_NO_NEW_PRIVS
 *   vfs_seccomp_install()   syscall allowlist (vfs_seccomp.h)
 *
 * All three must run before the process creates its first thread:
 * capabilities and the bounding set are per thread, and a fork into a new
 * pid namespace takes only the calling thread along.
 */
#ifndef VFS_SANDBOX_H
#define VFS_SANDBOX_H

#include <stdint.h>

#include "options.h"

struct vfs_sandbox {
    /* O_PATH fd of /proc/self/fd, for lo_config.proc_self_fd (caller's) */
    int proc_self_fd;
    /* lo_config.root: "/" inside namespace/chroot, the source with none */
    const char *root;
};

/*
 * Enter the sandbox @mode around the directory @source (absolute path).
 *
 * namespace: unshare(pid, mount, net) and fork. The calling process stays
 * outside as a waiter: it drops its capabilities, forwards SIGTERM,
 * SIGINT and SIGHUP to the child and exits with the child's status (128+N
 * if the child died of signal N); it never returns from this call. The
 * child, pid 1 of the new pid namespace, returns 0 here with a fresh
 * /proc, the source bind-mounted and pivoted to "/", and the old root
 * detached. Being pid 1, it only receives signals it has a handler for:
 * the caller must install SIGTERM/SIGINT/SIGHUP handlers first.
 * Open fds (the vhost-user socket, stderr, a connected syslog socket) are
 * inherited.
 *
 * Returns 0, or -errno after logging a message that says what to do (for
 * example, without CAP_SYS_ADMIN: use -o sandbox=chroot or none).
 */
int vfs_sandbox_enter(enum vfs_sandbox_mode mode, const char *source,
                      struct vfs_sandbox *sb);

/*
 * Keep only CHOWN, DAC_OVERRIDE, FOWNER, FSETID, SETGID, SETUID, MKNOD and
 * SETFCAP (plus @add, minus @drop: bit N is capability N) in the effective
 * and permitted sets and, when we may change it (CAP_SETPCAP), the
 * bounding set; clear the ambient and inheritable sets; set
 * PR_SET_NO_NEW_PRIVS. Capabilities the process does not hold are not
 * invented: an unprivileged run keeps none, which is fine with
 * -o sandbox=none. Asking to add one we do not hold is an error.
 * Returns 0 or -errno (logged).
 */
int vfs_sandbox_drop_caps(uint64_t add, uint64_t drop);

#endif
