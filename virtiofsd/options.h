/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Command line of the daemon: compatible with QEMU 7.2's C virtiofsd
 * (same option names, same defaults), plus a few of our own.
 *
 * Parsing is pure (no I/O, no exit): vfs_options_parse() fills a struct or
 * returns one error message; vfs_options_check() then does the checks that
 * look at the system (source directory, socket group). main.c prints the
 * message and exits 1.
 */
#ifndef VFS_OPTIONS_H
#define VFS_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"
#include "auto_slow.h"
#include "pool_sched.h"

enum vfs_cache_mode {
    VFS_CACHE_AUTO,
    VFS_CACHE_ALWAYS,
    VFS_CACHE_NONE,
};

enum vfs_sandbox_mode {
    VFS_SANDBOX_NAMESPACE,  /* pid+mount+net namespaces, pivot_root */
    VFS_SANDBOX_CHROOT,     /* chroot(2) into the source (containers) */
    VFS_SANDBOX_NONE,       /* ours: no confinement beyond caps+seccomp */
};

enum vfs_seccomp_mode {
    VFS_SECCOMP_KILL,       /* unlisted syscall kills the process */
    VFS_SECCOMP_LOG,        /* unlisted syscall is allowed and audited */
    VFS_SECCOMP_NONE,       /* no filter */
};

/* --queue-mode: every queue's execution mode at start (CONTROL.md) */
enum vfs_queue_mode {
    VFS_QUEUE_MODE_DEFAULT = 0, /* pool if --thread-pool-size > 0, else inline */
    VFS_QUEUE_MODE_INLINE,
    VFS_QUEUE_MODE_POOL,
    VFS_QUEUE_MODE_AUTO,
};
const char *vfs_queue_mode_name(enum vfs_queue_mode m, unsigned int pool_size);

struct vfs_options {
    /* actions that do not run the daemon */
    bool help;
    bool version;
    bool print_capabilities;

    /* logging and process */
    bool debug;                     /* -d / -o debug: forces log level debug */
    enum vfs_log_level log_level;   /* -o log_level= (default info) */
    bool syslog;
    bool daemonize;                 /* --daemonize; -f / -d clear it */

    /* vhost-user endpoint: exactly one of socket_path / fd */
    char *socket_path;
    char *socket_group;
    int fd;                         /* --fd=N, -1 if not given */

    /* filesystem (mapped onto struct lo_config by main.c) */
    char *source;
    enum vfs_cache_mode cache;
    double timeout;
    bool timeout_set;
    bool xattr;
    bool posix_lock;
    bool flock;
    bool writeback;
    bool allow_direct_io;
    int readdirplus;                /* -1 default (on unless cache=none) */
    bool announce_submounts;
    bool killpriv_v2;
    bool allow_root;                /* accepted for compatibility, no effect */

    /* request execution */
    unsigned int thread_pool_size;  /* 0: inline on the queue thread */
    enum vfs_queue_mode queue_mode; /* --queue-mode (0: by thread_pool_size) */
    enum fv_pool_sched pool_sched;  /* --pool-sched (0: normal) */
    unsigned int auto_slow_us;      /* --auto-slow-us (0: the default) */
    unsigned int max_idle_threads;  /* accepted for compatibility, no effect */

    /* confinement */
    enum vfs_sandbox_mode sandbox;
    enum vfs_seccomp_mode seccomp;
    uint64_t modcaps_add;           /* bit N: capability N (-o modcaps=+x) */
    uint64_t modcaps_drop;          /* bit N: capability N (-o modcaps=-x) */
    uint64_t rlimit_nofile;         /* --rlimit-nofile=N (0: leave it) */
    bool rlimit_nofile_set;         /* else the upstream default applies */

    /* instrumentation */
    bool stats;                     /* --stats=on|off (default on) */
    char *control_socket;           /* --control-socket=PATH, or NULL */
    /*
     * --trace=GLOB[,GLOB...] (repeatable: joined with ','; "-GLOB" turns
     * matches off again), or NULL. main.c applies it: trace_enable_list().
     */
    char *trace;

    /*
     * Options added by later issues go here (and in the tables at the top
     * of options.c, and in vfs_options_print_help()).
     */
};

/* Defaults as upstream: cache=auto, sandbox=namespace, seccomp=kill, ... */
void vfs_options_init(struct vfs_options *o);
void vfs_options_free(struct vfs_options *o);

/*
 * Parse argv[1..argc-1] into @o (initialised by the caller). Repeated
 * options: the last one wins. Returns 0, or -EINVAL with one line in @err
 * (no trailing newline).
 */
int vfs_options_parse(struct vfs_options *o, int argc, char **argv,
                      char *err, size_t errlen);

/*
 * Checks that need the system, for a run that serves (not for --help,
 * --version, --print-capabilities): exactly one of --socket-path/--fd,
 * -o source= present and a directory, --socket-group exists,
 * --control-socket fits a socket address, is not the vhost-user socket and
 * does not lie inside the shared directory (the guest would see it). Returns
 * 0 or -errno with one line in @err.
 */
int vfs_options_check(const struct vfs_options *o, char *err, size_t errlen);

/* The level to log at: debug if -d/-o debug, else -o log_level. */
enum vfs_log_level vfs_options_log_level(const struct vfs_options *o);

/* True if the run only prints something (--help/--version/--print-caps). */
bool vfs_options_info_only(const struct vfs_options *o);

void vfs_options_print_help(FILE *out, const char *prog);
/* First line of -V; main.c adds libfuse's kernel interface version. */
void vfs_options_print_version(FILE *out);
void vfs_options_print_capabilities(FILE *out);

/* "cache=auto sandbox=namespace ..." for the startup log line; free(). */
char *vfs_options_describe(const struct vfs_options *o);

const char *vfs_cache_mode_name(enum vfs_cache_mode m);
const char *vfs_sandbox_mode_name(enum vfs_sandbox_mode m);
const char *vfs_seccomp_mode_name(enum vfs_seccomp_mode m);

#endif
