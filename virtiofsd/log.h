/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One logging funnel for the daemon. Every message goes through vfs_log();
 * tests can capture it with vfs_log_set_sink().
 */
#ifndef VFS_LOG_H
#define VFS_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum vfs_log_level {
    VFS_LOG_ERR = 0,
    VFS_LOG_WARN = 1,
    VFS_LOG_INFO = 2,
    VFS_LOG_DEBUG = 3,
};

typedef void (*vfs_log_sink_fn)(enum vfs_log_level level, const char *msg,
                                void *opaque);

void vfs_log_set_level(enum vfs_log_level level);
enum vfs_log_level vfs_log_get_level(void);
/* Returns 0, or -EINVAL if @name is not one of debug|info|warn|err. */
int vfs_log_level_parse(const char *name, enum vfs_log_level *out);
void vfs_log_use_syslog(bool on);
/* Replace the stderr/syslog output (NULL restores it). Not thread-safe. */
void vfs_log_set_sink(vfs_log_sink_fn fn, void *opaque);

void vfs_log(enum vfs_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void vfs_vlog(enum vfs_log_level level, const char *fmt, va_list ap);

#define vfs_err(...) vfs_log(VFS_LOG_ERR, __VA_ARGS__)
#define vfs_warn(...) vfs_log(VFS_LOG_WARN, __VA_ARGS__)
#define vfs_info(...) vfs_log(VFS_LOG_INFO, __VA_ARGS__)
#define vfs_debug(...)                                                  \
    do {                                                                \
        if (vfs_log_get_level() >= VFS_LOG_DEBUG)                       \
            vfs_log(VFS_LOG_DEBUG, __VA_ARGS__);                        \
    } while (0)

/*
 * Rate-limited warning for guest-triggered conditions: a hostile guest must
 * not be able to flood the log. Logs at most a handful per second per call
 * site and counts the rest.
 */
#define vfs_warn_ratelimited(...)                                       \
    do {                                                                \
        static struct vfs_ratelimit _rl;                                \
        if (vfs_ratelimit_ok(&_rl))                                     \
            vfs_log(VFS_LOG_WARN, __VA_ARGS__);                         \
    } while (0)

struct vfs_ratelimit {
    long long window_start_ns;
    unsigned int in_window;
    unsigned int suppressed;
};
bool vfs_ratelimit_ok(struct vfs_ratelimit *rl);

#endif
