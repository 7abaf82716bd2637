/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static enum vfs_log_level current_level = VFS_LOG_INFO;
static bool use_syslog;
static vfs_log_sink_fn sink_fn;
static void *sink_opaque;
static pthread_mutex_t ratelimit_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {
    [VFS_LOG_ERR] = "err",
    [VFS_LOG_WARN] = "warn",
    [VFS_LOG_INFO] = "info",
    [VFS_LOG_DEBUG] = "debug",
};

void vfs_log_set_level(enum vfs_log_level level)
{
    __atomic_store_n(&current_level, level, __ATOMIC_RELAXED);
}

enum vfs_log_level vfs_log_get_level(void)
{
    return __atomic_load_n(&current_level, __ATOMIC_RELAXED);
}

int vfs_log_level_parse(const char *name, enum vfs_log_level *out)
{
    for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum vfs_log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

void vfs_log_use_syslog(bool on)
{
    use_syslog = on;
    if (on)
        openlog("virtiofsd", LOG_PID, LOG_DAEMON);
}

void vfs_log_set_sink(vfs_log_sink_fn fn, void *opaque)
{
    sink_fn = fn;
    sink_opaque = opaque;
}

void vfs_vlog(enum vfs_log_level level, const char *fmt, va_list ap)
{
    static const int syslog_prio[] = {
        [VFS_LOG_ERR] = LOG_ERR,
        [VFS_LOG_WARN] = LOG_WARNING,
        [VFS_LOG_INFO] = LOG_INFO,
        [VFS_LOG_DEBUG] = LOG_DEBUG,
    };
    char msg[1024];
    int saved_errno = errno;

    if (level > vfs_log_get_level())
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (sink_fn) {
        sink_fn(level, msg, sink_opaque);
    } else if (use_syslog) {
        syslog(syslog_prio[level], "%s", msg);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        /* One fprintf per line so concurrent threads do not interleave. */
        fprintf(stderr, "[%lld.%06ld] virtiofsd %s: %s%s", (long long)ts.tv_sec,
                ts.tv_nsec / 1000, level_names[level], msg,
                (msg[0] && msg[strlen(msg) - 1] == '\n') ? "" : "\n");
    }
    errno = saved_errno;
}

void vfs_log(enum vfs_log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfs_vlog(level, fmt, ap);
    va_end(ap);
}

bool vfs_ratelimit_ok(struct vfs_ratelimit *rl)
{
    struct timespec ts;
    long long now;
    bool ok;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    now = ts.tv_sec * 1000000000LL + ts.tv_nsec;
    pthread_mutex_lock(&ratelimit_lock);
    if (now - rl->window_start_ns > 1000000000LL) {
        if (rl->suppressed)
            vfs_log(VFS_LOG_WARN, "(%u similar messages suppressed)",
                    rl->suppressed);
        rl->window_start_ns = now;
        rl->in_window = 0;
        rl->suppressed = 0;
    }
    ok = rl->in_window < 10;
    if (ok)
        rl->in_window++;
    else
        rl->suppressed++;
    pthread_mutex_unlock(&ratelimit_lock);
    return ok;
}
