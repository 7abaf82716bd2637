/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Command line parser. Option names and defaults follow QEMU 7.2's
 * virtiofsd (`/usr/lib/qemu/virtiofsd --help`), so a libvirt or QEMU
 * setup that starts it can start us instead. Differences, on purpose:
 *   - -o source= is required (upstream silently exports "/");
 *   - bad values, unknown keys and bad numbers are errors up front, where
 *     upstream accepted some ("--thread-pool-size=12x", "-o modcaps=+foo")
 *     and failed later or never;
 *   - -o sandbox=none and --seccomp= are ours;
 *   - -o xattrmap, posix_acl, security_label are refused (not implemented).
 *
 * Two tables drive it: long/short options and -o keys. To add an option,
 * add a row (and a line in vfs_options_print_help()).
 */
#include "options.h"

#include <cap-ng.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "config.h"

struct perr {
    char *buf;
    size_t len;
};

static int fail(struct perr *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(struct perr *e, const char *fmt, ...)
{
    va_list ap;

    if (e->buf && e->len) {
        va_start(ap, fmt);
        vsnprintf(e->buf, e->len, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/*
 * Strict unsigned decimal: no sign, no spaces, no trailing junk, no
 * overflow, at most @max. strtoull alone would take "-1" as 2^64-1.
 */
static int parse_uint(struct perr *e, const char *what, const char *s,
                      unsigned long long max, unsigned long long *out)
{
    unsigned long long v;
    char *end;

    if (!s || s[0] < '0' || s[0] > '9')
        return fail(e, "%s: '%s' is not a non-negative integer", what,
                    s ? s : "");
    errno = 0;
    v = strtoull(s, &end, 10);
    if (*end)
        return fail(e, "%s: '%s' is not a non-negative integer", what, s);
    if (errno == ERANGE || v > max)
        return fail(e, "%s: '%s' is out of range (max %llu)", what, s, max);
    *out = v;
    return 0;
}

static int set_string(char **dst, const char *val, struct perr *e,
                      const char *what)
{
    char *copy;

    if (!val || !val[0])
        return fail(e, "%s: empty value", what);
    copy = strdup(val);
    if (!copy)
        return fail(e, "%s: out of memory", what);
    free(*dst);
    *dst = copy;
    return 0;
}

/* ------------------------------------------------------------------ */
/* -o keys                                                             */

static int o_cache(struct vfs_options *o, const char *v, struct perr *e)
{
    if (!strcmp(v, "auto"))
        o->cache = VFS_CACHE_AUTO;
    else if (!strcmp(v, "always"))
        o->cache = VFS_CACHE_ALWAYS;
    else if (!strcmp(v, "none"))
        o->cache = VFS_CACHE_NONE;
    else
        return fail(e, "-o cache: invalid mode '%s' (expected auto, always "
                    "or none)", v);
    return 0;
}

static int o_log_level(struct vfs_options *o, const char *v, struct perr *e)
{
    enum vfs_log_level l;

    if (vfs_log_level_parse(v, &l) < 0)
        return fail(e, "-o log_level: invalid level '%s' (expected debug, "
                    "info, warn or err)", v);
    o->log_level = l;
    return 0;
}

static int o_sandbox(struct vfs_options *o, const char *v, struct perr *e)
{
    if (!strcmp(v, "namespace"))
        o->sandbox = VFS_SANDBOX_NAMESPACE;
    else if (!strcmp(v, "chroot"))
        o->sandbox = VFS_SANDBOX_CHROOT;
    else if (!strcmp(v, "none"))
        o->sandbox = VFS_SANDBOX_NONE;
    else
        return fail(e, "-o sandbox: invalid mode '%s' (expected namespace, "
                    "chroot or none)", v);
    return 0;
}

static int o_timeout(struct vfs_options *o, const char *v, struct perr *e)
{
    char *end;
    double t;

    errno = 0;
    t = strtod(v, &end);
    /* strtod takes leading spaces, "inf" and "nan": none is a timeout. */
    if (!v[0] || v[0] == ' ' || *end || errno == ERANGE || !isfinite(t))
        return fail(e, "-o timeout: '%s' is not a number of seconds", v);
    if (t < 0)
        return fail(e, "-o timeout: '%s' is negative", v);
    o->timeout = t;
    o->timeout_set = true;
    return 0;
}

static int o_max_idle_threads(struct vfs_options *o, const char *v,
                              struct perr *e)
{
    unsigned long long n;
    int ret = parse_uint(e, "-o max_idle_threads", v, INT_MAX, &n);

    if (!ret)
        o->max_idle_threads = (unsigned int)n;
    return ret;
}

static int o_source(struct vfs_options *o, const char *v, struct perr *e)
{
    return set_string(&o->source, v, e, "-o source");
}

/* "+sys_admin:-chown": names as libcap-ng spells them, "cap_" optional. */
static int o_modcaps(struct vfs_options *o, const char *v, struct perr *e)
{
    uint64_t add = 0, drop = 0;
    const char *p = v;

    while (*p) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char name[64];
        int cap;

        if (n < 2 || (p[0] != '+' && p[0] != '-'))
            return fail(e, "-o modcaps: bad entry '%.*s' (expected "
                        "+name or -name, e.g. +sys_admin:-chown)", (int)n, p);
        if (n - 1 >= sizeof(name))
            return fail(e, "-o modcaps: capability name too long");
        memcpy(name, p + 1, n - 1);
        name[n - 1] = '\0';
        cap = capng_name_to_capability(strncasecmp(name, "cap_", 4) ? name
                                                                   : name + 4);
        if (cap < 0 || cap >= 64)
            return fail(e, "-o modcaps: unknown capability '%s'", name);
        if (p[0] == '+') {
            add |= 1ULL << cap;
            drop &= ~(1ULL << cap);
        } else {
            drop |= 1ULL << cap;
            add &= ~(1ULL << cap);
        }
        p += n;
        if (*p == ':') {
            p++;
            if (!*p)
                return fail(e, "-o modcaps: trailing ':' in '%s'", v);
        }
    }
    if (p == v)
        return fail(e, "-o modcaps: empty list");
    o->modcaps_add = add;
    o->modcaps_drop = drop;
    return 0;
}

static int o_xattrmap(struct vfs_options *o, const char *v, struct perr *e)
{
    return fail(e, "-o xattrmap is not supported by this virtiofsd");
}

static int o_posix_acl(struct vfs_options *o, const char *v, struct perr *e)
{
    return fail(e, "-o posix_acl is not supported by this virtiofsd "
                "(use no_posix_acl or leave it out)");
}

static int o_security_label(struct vfs_options *o, const char *v,
                            struct perr *e)
{
    return fail(e, "-o security_label is not supported by this virtiofsd "
                "(use no_security_label or leave it out)");
}

static int o_debug(struct vfs_options *o, const char *v, struct perr *e)
{
    o->debug = true;
    o->daemonize = false;       /* -d implies -f */
    return 0;
}

static int o_readdirplus(struct vfs_options *o, const char *v, struct perr *e)
{
    o->readdirplus = 1;
    return 0;
}

static int o_no_readdirplus(struct vfs_options *o, const char *v,
                            struct perr *e)
{
    o->readdirplus = 0;
    return 0;
}

enum key_kind {
    K_FLAG,     /* "key": calls @fn with v == NULL */
    K_VALUE,    /* "key=value": calls @fn */
};

struct o_key {
    const char *name;
    enum key_kind kind;
    int (*fn)(struct vfs_options *o, const char *v, struct perr *e);
};

static const struct o_key o_keys[] = {
    { "debug", K_FLAG, o_debug },
    { "cache", K_VALUE, o_cache },
    { "log_level", K_VALUE, o_log_level },
    { "max_idle_threads", K_VALUE, o_max_idle_threads },
    { "sandbox", K_VALUE, o_sandbox },
    { "timeout", K_VALUE, o_timeout },
    { "source", K_VALUE, o_source },
    { "modcaps", K_VALUE, o_modcaps },
    { "xattrmap", K_VALUE, o_xattrmap },
    { "posix_acl", K_FLAG, o_posix_acl },
    { "security_label", K_FLAG, o_security_label },
    { "readdirplus", K_FLAG, o_readdirplus },
    { "no_readdirplus", K_FLAG, o_no_readdirplus },
    /* later issues: -o keys with a value or a handler go here */
};

/* Flags that map straight onto a bool member. */
struct o_bool {
    const char *name;
    size_t off;     /* (size_t)-1: accepted, sets nothing */
    bool value;
};

#define OB(name, member, value) { name, offsetof(struct vfs_options, member), value }

static const struct o_bool o_bools[] = {
    OB("flock", flock, true),
    OB("no_flock", flock, false),
    OB("posix_lock", posix_lock, true),
    OB("no_posix_lock", posix_lock, false),
    OB("writeback", writeback, true),
    OB("no_writeback", writeback, false),
    OB("xattr", xattr, true),
    OB("no_xattr", xattr, false),
    OB("allow_direct_io", allow_direct_io, true),
    OB("no_allow_direct_io", allow_direct_io, false),
    OB("announce_submounts", announce_submounts, true),
    OB("killpriv_v2", killpriv_v2, true),
    OB("no_killpriv_v2", killpriv_v2, false),
    OB("allow_root", allow_root, true),
    { "no_posix_acl", (size_t)-1, false },
    { "no_security_label", (size_t)-1, false },
    /* later issues: on/off -o flags go here */
};
#undef OB

static int parse_o_item(struct vfs_options *o, char *item, struct perr *e)
{
    char *eq = strchr(item, '=');
    const char *val = NULL;

    if (!item[0])
        return 0;   /* "-o a,,b" or a trailing comma: nothing to set */
    if (eq) {
        *eq = '\0';
        val = eq + 1;
    }
    for (size_t i = 0; i < sizeof(o_bools) / sizeof(o_bools[0]); i++) {
        if (strcmp(item, o_bools[i].name))
            continue;
        if (val)
            return fail(e, "-o %s takes no value", item);
        if (o_bools[i].off != (size_t)-1)
            *(bool *)((char *)o + o_bools[i].off) = o_bools[i].value;
        return 0;
    }
    for (size_t i = 0; i < sizeof(o_keys) / sizeof(o_keys[0]); i++) {
        const struct o_key *k = &o_keys[i];

        if (strcmp(item, k->name))
            continue;
        if (k->kind == K_VALUE && !val)
            return fail(e, "-o %s needs a value (%s=...)", item, item);
        if (k->kind != K_VALUE && val)
            return fail(e, "-o %s takes no value", item);
        return k->fn(o, val, e);
    }
    return fail(e, "unknown option '-o %s%s%s'", item, val ? "=" : "",
                val ? val : "");
}

/*
 * A -o argument is a comma-separated list, as in libfuse: "\," is a
 * literal comma and "\\" a backslash (a source path may contain commas).
 */
static int parse_o_list(struct vfs_options *o, const char *list, struct perr *e)
{
    size_t n = strlen(list);
    char *item = malloc(n + 1);
    size_t len = 0;
    int ret = 0;

    if (!item)
        return fail(e, "out of memory");
    for (size_t i = 0; ; i++) {
        char c = list[i];

        if (c == '\\' && list[i + 1]) {
            item[len++] = list[++i];
            continue;
        }
        if (c == ',' || c == '\0') {
            item[len] = '\0';
            ret = parse_o_item(o, item, e);
            len = 0;
            if (ret || c == '\0')
                break;
            continue;
        }
        item[len++] = c;
    }
    free(item);
    return ret;
}

/* ------------------------------------------------------------------ */
/* Command line options                                                */

static int a_help(struct vfs_options *o, const char *v, struct perr *e)
{
    o->help = true;
    return 0;
}

static int a_version(struct vfs_options *o, const char *v, struct perr *e)
{
    o->version = true;
    return 0;
}

static int a_print_caps(struct vfs_options *o, const char *v, struct perr *e)
{
    o->print_capabilities = true;
    return 0;
}

static int a_syslog(struct vfs_options *o, const char *v, struct perr *e)
{
    o->syslog = true;
    return 0;
}

static int a_foreground(struct vfs_options *o, const char *v, struct perr *e)
{
    o->daemonize = false;
    return 0;
}

static int a_daemonize(struct vfs_options *o, const char *v, struct perr *e)
{
    o->daemonize = true;
    return 0;
}

static int a_socket_path(struct vfs_options *o, const char *v, struct perr *e)
{
    return set_string(&o->socket_path, v, e, "--socket-path");
}

static int a_socket_group(struct vfs_options *o, const char *v, struct perr *e)
{
    return set_string(&o->socket_group, v, e, "--socket-group");
}

static int a_fd(struct vfs_options *o, const char *v, struct perr *e)
{
    unsigned long long n;
    int ret = parse_uint(e, "--fd", v, INT_MAX, &n);

    if (!ret)
        o->fd = (int)n;
    return ret;
}

static int a_thread_pool_size(struct vfs_options *o, const char *v,
                              struct perr *e)
{
    unsigned long long n;
    int ret = parse_uint(e, "--thread-pool-size", v, INT_MAX, &n);

    if (!ret)
        o->thread_pool_size = (unsigned int)n;
    return ret;
}

static int a_auto_slow_us(struct vfs_options *o, const char *v,
                          struct perr *e)
{
    if (fv_auto_slow_parse(v, &o->auto_slow_us) < 0)
        return fail(e, "--auto-slow-us: invalid value '%s' (expected %u..%u "
                    "microseconds)", v ? v : "", FV_AUTO_SLOW_MIN_US,
                    FV_AUTO_SLOW_MAX_US);
    return 0;
}

static int a_queue_mode(struct vfs_options *o, const char *v, struct perr *e)
{
    if (!strcmp(v, "inline"))
        o->queue_mode = VFS_QUEUE_MODE_INLINE;
    else if (!strcmp(v, "pool"))
        o->queue_mode = VFS_QUEUE_MODE_POOL;
    else if (!strcmp(v, "auto"))
        o->queue_mode = VFS_QUEUE_MODE_AUTO;
    else
        return fail(e, "--queue-mode: invalid value '%s' (expected inline, "
                    "pool or auto)", v);
    return 0;
}

const char *vfs_queue_mode_name(enum vfs_queue_mode m, unsigned int pool_size)
{
    switch (m) {
    case VFS_QUEUE_MODE_INLINE:
        return "inline";
    case VFS_QUEUE_MODE_POOL:
        return "pool";
    case VFS_QUEUE_MODE_AUTO:
        return "auto";
    default:
        return pool_size ? "pool" : "inline";
    }
}

static int a_pool_sched(struct vfs_options *o, const char *v, struct perr *e)
{
    enum fv_pool_sched sched;

    if (fv_pool_sched_parse(v, &sched) < 0)
        return fail(e, "--pool-sched: invalid value '%s' (expected normal or "
                    "batch)", v);
    o->pool_sched = sched;
    return 0;
}

static int a_rlimit_nofile(struct vfs_options *o, const char *v,
                           struct perr *e)
{
    unsigned long long n;
    /* The kernel caps RLIMIT_NOFILE at fs.nr_open (at most ~2^30). */
    int ret = parse_uint(e, "--rlimit-nofile", v, INT_MAX, &n);

    if (!ret) {
        o->rlimit_nofile = n;
        o->rlimit_nofile_set = true;
    }
    return ret;
}

static int a_stats(struct vfs_options *o, const char *v, struct perr *e)
{
    if (!strcmp(v, "on"))
        o->stats = true;
    else if (!strcmp(v, "off"))
        o->stats = false;
    else
        return fail(e, "--stats: invalid value '%s' (expected on or off)", v);
    return 0;
}

static int a_control_socket(struct vfs_options *o, const char *v,
                            struct perr *e)
{
    return set_string(&o->control_socket, v, e, "--control-socket");
}

/* Repeatable, unlike the rest: each one adds patterns to the list. */
static int a_trace(struct vfs_options *o, const char *v, struct perr *e)
{
    size_t old = o->trace ? strlen(o->trace) : 0;
    char *s;

    if (!v || !v[0])
        return fail(e, "--trace: empty value");
    s = realloc(o->trace, old + 1 + strlen(v) + 1);
    if (!s)
        return fail(e, "--trace: out of memory");
    if (old)
        s[old++] = ',';
    strcpy(s + old, v);
    o->trace = s;
    return 0;
}

static int a_seccomp(struct vfs_options *o, const char *v, struct perr *e)
{
    if (!strcmp(v, "kill"))
        o->seccomp = VFS_SECCOMP_KILL;
    else if (!strcmp(v, "log"))
        o->seccomp = VFS_SECCOMP_LOG;
    else if (!strcmp(v, "none"))
        o->seccomp = VFS_SECCOMP_NONE;
    else
        return fail(e, "--seccomp: invalid mode '%s' (expected kill, log "
                    "or none)", v);
    return 0;
}

struct arg_opt {
    const char *name;       /* "--socket-path" or "-f" */
    bool has_arg;           /* --name=VALUE or --name VALUE */
    int (*fn)(struct vfs_options *o, const char *v, struct perr *e);
};

static const struct arg_opt arg_opts[] = {
    { "-h", false, a_help },
    { "--help", false, a_help },
    { "-V", false, a_version },
    { "--version", false, a_version },
    { "--print-capabilities", false, a_print_caps },
    { "-d", false, o_debug },
    { "-f", false, a_foreground },
    { "--daemonize", false, a_daemonize },
    { "--syslog", false, a_syslog },
    { "--socket-path", true, a_socket_path },
    { "--socket-group", true, a_socket_group },
    { "--fd", true, a_fd },
    { "--thread-pool-size", true, a_thread_pool_size },
    { "--queue-mode", true, a_queue_mode },
    { "--auto-slow-us", true, a_auto_slow_us },
    { "--pool-sched", true, a_pool_sched },
    { "--rlimit-nofile", true, a_rlimit_nofile },
    { "--seccomp", true, a_seccomp },
    { "--stats", true, a_stats },
    { "--control-socket", true, a_control_socket },
    { "--trace", true, a_trace },
};

void vfs_options_init(struct vfs_options *o)
{
    memset(o, 0, sizeof(*o));
    o->log_level = VFS_LOG_INFO;
    o->fd = -1;
    o->cache = VFS_CACHE_AUTO;
    o->readdirplus = -1;
    /*
     * Upstream's help says killpriv_v2 defaults to on, but since QEMU 6.0
     * ("virtiofsd: Disable killpriv_v2 by default") it is only offered
     * when asked for. We follow the code, not the stale help text.
     */
    o->killpriv_v2 = false;
    o->max_idle_threads = 10;
    o->sandbox = VFS_SANDBOX_NAMESPACE;
    o->seccomp = VFS_SECCOMP_KILL;
    o->stats = true;
}

void vfs_options_free(struct vfs_options *o)
{
    free(o->source);
    free(o->socket_path);
    free(o->socket_group);
    free(o->control_socket);
    free(o->trace);
    o->source = o->socket_path = o->socket_group = NULL;
    o->control_socket = NULL;
    o->trace = NULL;
}

int vfs_options_parse(struct vfs_options *o, int argc, char **argv,
                      char *err, size_t errlen)
{
    struct perr e = { err, errlen };

    if (err && errlen)
        err[0] = '\0';
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const struct arg_opt *opt = NULL;
        const char *eq, *val = NULL;
        size_t nlen;
        int ret;

        if (!strcmp(a, "-o")) {
            if (i + 1 >= argc)
                return fail(&e, "-o needs an argument (e.g. -o source=/dir)");
            ret = parse_o_list(o, argv[++i], &e);
            if (ret)
                return ret;
            continue;
        }
        if (!strncmp(a, "-o", 2)) {     /* "-osource=/x", as libfuse takes */
            ret = parse_o_list(o, a + 2, &e);
            if (ret)
                return ret;
            continue;
        }
        if (a[0] != '-')
            return fail(&e, "unexpected argument '%s'", a);

        eq = a[1] == '-' ? strchr(a, '=') : NULL;
        nlen = eq ? (size_t)(eq - a) : strlen(a);
        for (size_t j = 0; j < sizeof(arg_opts) / sizeof(arg_opts[0]); j++) {
            if (strlen(arg_opts[j].name) == nlen &&
                !strncmp(arg_opts[j].name, a, nlen)) {
                opt = &arg_opts[j];
                break;
            }
        }
        if (!opt)
            return fail(&e, "unknown option '%s'", a);
        if (opt->has_arg) {
            if (eq) {
                val = eq + 1;
            } else if (i + 1 < argc) {
                val = argv[++i];
            } else {
                return fail(&e, "%s needs an argument (%s=VALUE)", opt->name,
                            opt->name);
            }
        } else if (eq) {
            return fail(&e, "%.*s takes no argument", (int)nlen, a);
        }
        ret = opt->fn(o, val, &e);
        if (ret)
            return ret;
    }
    return 0;
}

bool vfs_options_info_only(const struct vfs_options *o)
{
    return o->help || o->version || o->print_capabilities;
}

/* realpath() of the directory @path would be created in. */
static char *socket_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir, *res;

    if (!slash)
        return realpath(".", NULL);
    if (slash == path)
        return realpath("/", NULL);
    dir = strndup(path, (size_t)(slash - path));
    if (!dir)
        return NULL;
    res = realpath(dir, NULL);
    free(dir);
    return res;
}

/* @dir is @root or below it (both canonical). */
static bool path_within(const char *dir, const char *root)
{
    size_t n = strlen(root);

    if (!strcmp(root, "/"))
        return true;
    return !strncmp(dir, root, n) && (dir[n] == '\0' || dir[n] == '/');
}

static int check_control_socket(const struct vfs_options *o, struct perr *e)
{
    const char *p = o->control_socket;
    char *dir, *src;
    bool inside;

    if (strlen(p) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return fail(e, "--control-socket: '%s' is too long for a unix socket "
                    "(max %zu bytes)", p,
                    sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    if (p[strlen(p) - 1] == '/')
        return fail(e, "--control-socket: '%s' names a directory", p);
    if (o->socket_path && !strcmp(o->socket_path, p))
        return fail(e, "--control-socket: '%s' is also the --socket-path", p);
    dir = socket_dir(p);
    if (!dir)
        return fail(e, "--control-socket: directory of '%s': %s", p,
                    strerror(errno));
    src = realpath(o->source, NULL);
    if (!src) {
        int err = errno;

        free(dir);
        return fail(e, "-o source: '%s': %s", o->source, strerror(err));
    }
    /* the guest could see, replace or remove it there */
    inside = path_within(dir, src);
    free(dir);
    free(src);
    if (inside)
        return fail(e, "--control-socket: '%s' is inside the shared "
                    "directory '%s'", p, o->source);
    return 0;
}

int vfs_options_check(const struct vfs_options *o, char *err, size_t errlen)
{
    struct perr e = { err, errlen };
    struct stat st;

    if (err && errlen)
        err[0] = '\0';
    if (o->socket_path && o->fd >= 0)
        return fail(&e, "--socket-path and --fd cannot be given together");
    if (!o->socket_path && o->fd < 0)
        return fail(&e, "missing --socket-path or --fd option");
    if (o->socket_path &&
        strlen(o->socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return fail(&e, "--socket-path: '%s' is too long for a unix socket "
                    "(max %zu bytes)", o->socket_path,
                    sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    if (o->fd >= 0) {
        if (fstat(o->fd, &st) < 0)
            return fail(&e, "--fd=%d: %s", o->fd, strerror(errno));
        if (!S_ISSOCK(st.st_mode))
            return fail(&e, "--fd=%d is not a socket", o->fd);
    }
    if (o->socket_group && !getgrnam(o->socket_group)) {
        unsigned long long gid;
        struct perr quiet = { NULL, 0 };

        /* A numeric gid is fine too, as long as the group exists. */
        if (parse_uint(&quiet, "", o->socket_group, UINT_MAX - 1, &gid) ||
            !getgrgid((gid_t)gid))
            return fail(&e, "--socket-group: unknown group '%s'",
                        o->socket_group);
    }
    if (!o->source)
        return fail(&e, "missing -o source=PATH (the directory to share)");
    if (stat(o->source, &st) < 0)
        return fail(&e, "-o source: cannot use '%s': %s", o->source,
                    strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return fail(&e, "-o source: '%s' is not a directory", o->source);
    if (o->control_socket)
        return check_control_socket(o, &e);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Output                                                              */

void vfs_options_print_help(FILE *out, const char *prog)
{
    fprintf(out,
"usage: %s [options]\n"
"\n"
"    -h   --help                print help\n"
"    -V   --version             print version\n"
"    --print-capabilities       print vhost-user.json\n"
"    -d   -o debug              enable debug output (implies -f)\n"
"    --syslog                   log to syslog (default stderr)\n"
"    -f                         foreground operation (default)\n"
"    --daemonize                run in background once the socket listens\n"
"    -o cache=<mode>            cache mode. could be one of \"auto, always, none\"\n"
"                               default: auto\n"
"    -o flock|no_flock          enable/disable flock\n"
"                               default: no_flock\n"
"    -o log_level=<level>       log level, default to \"info\"\n"
"                               level could be one of \"debug, info, warn, err\"\n"
"    -o max_idle_threads=<num>  accepted for compatibility, no effect\n"
"    -o posix_lock|no_posix_lock\n"
"                               enable/disable remote posix lock\n"
"                               default: no_posix_lock\n"
"    -o readdirplus|no_readdirplus\n"
"                               enable/disable readdirplus\n"
"                               default: readdirplus except with cache=none\n"
"    -o sandbox=namespace|chroot|none\n"
"                               sandboxing mode:\n"
"                               - namespace: mount, pid, and net\n"
"                                 namespaces with pivot_root(2)\n"
"                                 into shared directory\n"
"                               - chroot: chroot(2) into shared\n"
"                                 directory (use in containers)\n"
"                               - none: no confinement beyond\n"
"                                 capabilities and seccomp\n"
"                               default: namespace\n"
"    -o timeout=<number>        I/O timeout (seconds)\n"
"                               default: depends on cache= option.\n"
"    -o writeback|no_writeback  enable/disable writeback cache\n"
"                               default: no_writeback\n"
"    -o xattr|no_xattr          enable/disable xattr\n"
"                               default: no_xattr\n"
"    -o xattrmap=<mapping>      not supported (refused)\n"
"    -o modcaps=CAPLIST         Modify the list of capabilities\n"
"                               e.g. -o modcaps=+sys_admin:-chown\n"
"    --rlimit-nofile=<num>      set maximum number of file descriptors\n"
"                               (0 leaves rlimit unchanged)\n"
"                               default: min(1000000, fs.file-max - 16384)\n"
"                                        if the current rlimit is lower\n"
"    -o allow_direct_io|no_allow_direct_io\n"
"                               retain/discard O_DIRECT flags passed down\n"
"                               to virtiofsd from guest applications.\n"
"                               default: no_allow_direct_io\n"
"    -o announce_submounts      Announce sub-mount points to the guest\n"
"    -o posix_acl/no_posix_acl  posix_acl is not supported (refused);\n"
"                               no_posix_acl is accepted (default)\n"
"    -o security_label/no_security_label\n"
"                               security_label is not supported (refused);\n"
"                               no_security_label is accepted (default)\n"
"    -o killpriv_v2/no_killpriv_v2\n"
"                               Enable/Disable FUSE_HANDLE_KILLPRIV_V2.\n"
"                               default: no_killpriv_v2\n"
"    -o source=PATH             shared directory tree (required)\n"
"    -o allow_root              accepted for compatibility, no effect\n"
"    --socket-path=PATH         path for the vhost-user socket\n"
"    --socket-group=GRNAME      name of group for the vhost-user socket\n"
"    --fd=FDNUM                 fd number of vhost-user socket\n"
"                               (listening, or already connected)\n"
"    --thread-pool-size=NUM     thread pool size limit (default 0:\n"
"                               requests run on the queue thread)\n"
"    --queue-mode=inline|pool|auto\n"
"                               where each queue runs its requests at\n"
"                               start: on the queue thread, on its pool,\n"
"                               or auto (inline unless requests wait and\n"
"                               inline runs are slow, then the pool);\n"
"                               pool and auto use --thread-pool-size\n"
"                               threads, 4 if it is 0; live: virtiofsctl\n"
"                               mode. default: pool if --thread-pool-size\n"
"                               > 0, else inline\n"
"    --auto-slow-us=US          auto: the average inline run time from\n"
"                               which waiting requests go to the pool\n"
"                               (1..1000000); live: virtiofsctl mode\n"
"                               --auto-slow. default: 25\n"
"    --pool-sched=normal|batch  scheduling policy of pool threads while they\n"
"                               run requests: normal (SCHED_OTHER) or batch\n"
"                               (SCHED_BATCH: a woken worker does not\n"
"                               preempt; STATS.md \"Pool hand-off\"); live:\n"
"                               virtiofsctl mode --sched. default: normal\n"
"    --seccomp=kill|log|none    action for a syscall outside the allowlist:\n"
"                               kill the process, allow and log it to the\n"
"                               audit log (dmesg), or no filter\n"
"                               default: kill\n"
"    --stats=on|off             per-request latency counters (STATS.md)\n"
"                               default: on\n"
"    --control-socket=PATH      unix socket (mode 0600, outside the shared\n"
"                               directory) for virtiofsctl: counters, live\n"
"                               inline/pool switch (CONTROL.md)\n"
"    --trace=PATTERN[,PATTERN]  print trace events whose names match the\n"
"                               globs to the log (info level); -PATTERN\n"
"                               turns matches off; repeatable. Events:\n"
"                               tracepoints/trace-events (also USDT probes)\n"
"\n"
"    -o options may be combined with commas: -o source=/dir,cache=none\n"
"    (\\, is a literal comma). Repeated options: the last one wins.\n"
"    Exactly one of --socket-path and --fd is required.\n",
            prog);
}

void vfs_options_print_version(FILE *out)
{
    fprintf(out, "virtiofsd-instrumented %s\n", VFS_VERSION);
}

void vfs_options_print_capabilities(FILE *out)
{
    /* Byte for byte what QEMU 7.2's virtiofsd prints. */
    fprintf(out, "{\n  \"type\": \"fs\"\n}\n");
}

const char *vfs_cache_mode_name(enum vfs_cache_mode m)
{
    switch (m) {
    case VFS_CACHE_AUTO: return "auto";
    case VFS_CACHE_ALWAYS: return "always";
    case VFS_CACHE_NONE: return "none";
    }
    return "?";
}

const char *vfs_sandbox_mode_name(enum vfs_sandbox_mode m)
{
    switch (m) {
    case VFS_SANDBOX_NAMESPACE: return "namespace";
    case VFS_SANDBOX_CHROOT: return "chroot";
    case VFS_SANDBOX_NONE: return "none";
    }
    return "?";
}

const char *vfs_seccomp_mode_name(enum vfs_seccomp_mode m)
{
    switch (m) {
    case VFS_SECCOMP_KILL: return "kill";
    case VFS_SECCOMP_LOG: return "log";
    case VFS_SECCOMP_NONE: return "none";
    }
    return "?";
}

static const char *log_level_name(enum vfs_log_level l)
{
    switch (l) {
    case VFS_LOG_ERR: return "err";
    case VFS_LOG_WARN: return "warn";
    case VFS_LOG_INFO: return "info";
    case VFS_LOG_DEBUG: return "debug";
    }
    return "?";
}

enum vfs_log_level vfs_options_log_level(const struct vfs_options *o)
{
    /* As upstream: -d / -o debug wins over -o log_level, in any order. */
    return o->debug ? VFS_LOG_DEBUG : o->log_level;
}

static void describe_modcaps(FILE *f, uint64_t add, uint64_t drop)
{
    const char *sep = "";

    if (!add && !drop) {
        fputs("none", f);
        return;
    }
    for (int cap = 0; cap < 64; cap++) {
        const char *name;

        if (!((add | drop) & (1ULL << cap)))
            continue;
        name = capng_capability_to_name((unsigned int)cap);
        fprintf(f, "%s%c%s", sep, (add & (1ULL << cap)) ? '+' : '-',
                name ? name : "?");
        sep = ":";
    }
}

char *vfs_options_describe(const struct vfs_options *o)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (!f)
        return NULL;
    fprintf(f, "source=%s", o->source ? o->source : "(none)");
    if (o->socket_path)
        fprintf(f, " socket-path=%s", o->socket_path);
    else
        fprintf(f, " fd=%d", o->fd);
    if (o->socket_group)
        fprintf(f, " socket-group=%s", o->socket_group);
    fprintf(f, " cache=%s", vfs_cache_mode_name(o->cache));
    if (o->timeout_set)
        fprintf(f, " timeout=%g", o->timeout);
    else
        fprintf(f, " timeout=default");
    fprintf(f, " readdirplus=%s",
            o->readdirplus < 0 ? "default" : o->readdirplus ? "on" : "off");
    fprintf(f, " xattr=%s posix_lock=%s flock=%s writeback=%s"
            " allow_direct_io=%s announce_submounts=%s killpriv_v2=%s",
            o->xattr ? "on" : "off", o->posix_lock ? "on" : "off",
            o->flock ? "on" : "off", o->writeback ? "on" : "off",
            o->allow_direct_io ? "on" : "off",
            o->announce_submounts ? "on" : "off",
            o->killpriv_v2 ? "on" : "off");
    fprintf(f, " thread-pool-size=%u queue-mode=%s pool-sched=%s"
            " auto-slow-us=%u sandbox=%s seccomp=%s modcaps=",
            o->thread_pool_size,
            vfs_queue_mode_name(o->queue_mode, o->thread_pool_size),
            fv_pool_sched_name(o->pool_sched),
            o->auto_slow_us ? o->auto_slow_us : FV_AUTO_SLOW_DEFAULT_US,
            vfs_sandbox_mode_name(o->sandbox),
            vfs_seccomp_mode_name(o->seccomp));
    describe_modcaps(f, o->modcaps_add, o->modcaps_drop);
    if (o->rlimit_nofile_set)
        fprintf(f, " rlimit-nofile=%llu", (unsigned long long)o->rlimit_nofile);
    else
        fprintf(f, " rlimit-nofile=default");
    fprintf(f, " log_level=%s%s", log_level_name(vfs_options_log_level(o)),
            o->syslog ? " syslog" : "");
    fprintf(f, " stats=%s", o->stats ? "on" : "off");
    if (o->control_socket)
        fprintf(f, " control-socket=%s", o->control_socket);
    if (o->trace)
        fprintf(f, " trace=%s", o->trace);
    if (o->daemonize)
        fprintf(f, " daemonize");
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
