/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Syscall allowlist (libseccomp), implemented in seccomp.c. Not named
 * seccomp.h: that would shadow <seccomp.h>, this directory being on the
 * include path. Installed after the sandbox and the capability drop,
 * before the first thread: the filter is inherited by every thread
 * created later (and synced to any that already exist).
 */
#ifndef VFS_SECCOMP_H
#define VFS_SECCOMP_H

#include <stdbool.h>

#include "options.h"

/*
 * @mode: KILL kills the whole process on a syscall outside the list
 * (SIGSYS), LOG lets it through and records it in the audit log
 * ("audit: type=1326 ... syscall=N" in dmesg), NONE installs nothing.
 * @syslog adds what glibc's syslog() needs to reconnect to /dev/log.
 * Returns 0 or -errno (logged).
 */
int vfs_seccomp_install(enum vfs_seccomp_mode mode, bool syslog);
/* As above; @control_socket adds what serving --control-socket needs. */
int vfs_seccomp_install_with(enum vfs_seccomp_mode mode, bool syslog,
                             bool control_socket);

/* Number of syscalls in the allowlist that this architecture knows. */
unsigned int vfs_seccomp_allowlist_size(bool syslog);

#endif
