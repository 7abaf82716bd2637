/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_options: the command line parser takes every upstream option with
 * upstream's defaults, -o comma lists and repeats (last wins), and refuses
 * bad options, values and numbers with one line naming the culprit.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "options.h"

static int failures;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);  \
            failures++;                                                      \
        }                                                                    \
    } while (0)

static struct vfs_options O;
static char E[512];

/* parse("--a", "-o", "b", NULL): fresh options each time. */
static int parse(const char *first, ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;

    vfs_options_free(&O);
    vfs_options_init(&O);
    argv[argc++] = (char *)"virtiofsd";
    va_start(ap, first);
    for (const char *a = first; a && argc < 63; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    return vfs_options_parse(&O, argc, argv, E, sizeof(E));
}

/* The parse fails with one line that contains @needle. */
#define CHECK_ERR(needle, ...)                                               \
    do {                                                                     \
        int _r = parse(__VA_ARGS__, NULL);                                   \
        if (_r != -EINVAL || !strstr(E, needle) || strchr(E, '\n')) {        \
            fprintf(stderr, "FAIL %s:%d: parse(%s) = %d, err '%s', "         \
                    "want -EINVAL and '%s'\n", __FILE__, __LINE__,           \
                    #__VA_ARGS__, _r, E, needle);                            \
            failures++;                                                      \
        }                                                                    \
    } while (0)

#define CHECK_OK(...)                                                        \
    do {                                                                     \
        int _r = parse(__VA_ARGS__, NULL);                                   \
        if (_r != 0) {                                                       \
            fprintf(stderr, "FAIL %s:%d: parse(%s) = %d: %s\n", __FILE__,    \
                    __LINE__, #__VA_ARGS__, _r, E);                          \
            failures++;                                                      \
        }                                                                    \
    } while (0)

static void test_defaults(void)
{
    CHECK(parse(NULL) == 0);
    CHECK(!O.help && !O.version && !O.print_capabilities);
    CHECK(!vfs_options_info_only(&O));
    CHECK(!O.debug && O.log_level == VFS_LOG_INFO);
    CHECK(vfs_options_log_level(&O) == VFS_LOG_INFO);
    CHECK(!O.syslog && !O.daemonize);
    CHECK(!O.socket_path && !O.socket_group && O.fd == -1);
    CHECK(!O.source);
    CHECK(O.cache == VFS_CACHE_AUTO);
    CHECK(!O.timeout_set);
    CHECK(!O.xattr && !O.posix_lock && !O.flock && !O.writeback);
    CHECK(!O.allow_direct_io && !O.announce_submounts && !O.killpriv_v2);
    CHECK(O.readdirplus == -1);
    CHECK(O.thread_pool_size == 0);
    CHECK(O.max_idle_threads == 10);
    CHECK(O.sandbox == VFS_SANDBOX_NAMESPACE);
    CHECK(O.seccomp == VFS_SECCOMP_KILL);
    CHECK(O.modcaps_add == 0 && O.modcaps_drop == 0);
    CHECK(!O.rlimit_nofile_set);
    CHECK(O.stats);
    CHECK(!O.control_socket);
}

/* --stats=on|off and --control-socket=PATH (issue 4) */
static void test_instrumentation(void)
{
    CHECK_OK("--stats=off");
    CHECK(!O.stats);
    CHECK_OK("--stats", "off", "--stats=on");
    CHECK(O.stats);
    CHECK_ERR("--stats: invalid value 'yes'", "--stats=yes");
    CHECK_ERR("--stats: invalid value ''", "--stats=");
    CHECK_ERR("--stats needs an argument", "--stats");
    CHECK_OK("--control-socket=/run/a.sock", "--control-socket", "/run/b.sock");
    CHECK(O.control_socket && !strcmp(O.control_socket, "/run/b.sock"));
    CHECK_ERR("--control-socket: empty value", "--control-socket=");
    CHECK_ERR("--control-socket needs an argument", "--control-socket");
}

static void test_info_options(void)
{
    CHECK_OK("-h");
    CHECK(O.help && vfs_options_info_only(&O));
    CHECK_OK("--help");
    CHECK(O.help);
    CHECK_OK("-V");
    CHECK(O.version && vfs_options_info_only(&O));
    CHECK_OK("--version");
    CHECK(O.version);
    CHECK_OK("--print-capabilities");
    CHECK(O.print_capabilities && vfs_options_info_only(&O));
    CHECK_ERR("--help", "--help=yes");
}

static void test_logging_and_process(void)
{
    static const struct { const char *name; enum vfs_log_level l; } levels[] = {
        { "debug", VFS_LOG_DEBUG }, { "info", VFS_LOG_INFO },
        { "warn", VFS_LOG_WARN }, { "err", VFS_LOG_ERR },
    };
    char arg[64];

    for (size_t i = 0; i < 4; i++) {
        snprintf(arg, sizeof(arg), "log_level=%s", levels[i].name);
        CHECK_OK("-o", arg);
        CHECK(O.log_level == levels[i].l);
        CHECK(vfs_options_log_level(&O) == levels[i].l);
    }
    CHECK_ERR("loud", "-o", "log_level=loud");
    CHECK_ERR("log_level", "-o", "log_level");

    CHECK_OK("-d");
    CHECK(O.debug && vfs_options_log_level(&O) == VFS_LOG_DEBUG);
    CHECK_OK("-o", "debug");
    CHECK(O.debug);
    /* debug wins over log_level, whatever the order (as upstream) */
    CHECK_OK("-d", "-o", "log_level=err");
    CHECK(vfs_options_log_level(&O) == VFS_LOG_DEBUG);
    CHECK_OK("-o", "log_level=err", "-o", "debug");
    CHECK(vfs_options_log_level(&O) == VFS_LOG_DEBUG);

    CHECK_OK("--syslog");
    CHECK(O.syslog);
    CHECK_ERR("--syslog", "--syslog=1");

    CHECK_OK("--daemonize");
    CHECK(O.daemonize);
    CHECK_OK("-f");
    CHECK(!O.daemonize);
    CHECK_OK("--daemonize", "-f");
    CHECK(!O.daemonize);
    CHECK_OK("-f", "--daemonize");
    CHECK(O.daemonize);
    CHECK_OK("--daemonize", "-d");     /* -d implies -f */
    CHECK(!O.daemonize && O.debug);
}

static void test_cache_sandbox_seccomp(void)
{
    CHECK_OK("-o", "cache=none");
    CHECK(O.cache == VFS_CACHE_NONE);
    CHECK_OK("-o", "cache=always");
    CHECK(O.cache == VFS_CACHE_ALWAYS);
    CHECK_OK("-o", "cache=auto");
    CHECK(O.cache == VFS_CACHE_AUTO);
    CHECK_ERR("'sometimes'", "-o", "cache=sometimes");
    CHECK_ERR("cache", "-o", "cache=");
    CHECK_ERR("needs a value", "-o", "cache");

    CHECK_OK("-o", "sandbox=chroot");
    CHECK(O.sandbox == VFS_SANDBOX_CHROOT);
    CHECK_OK("-o", "sandbox=none");
    CHECK(O.sandbox == VFS_SANDBOX_NONE);
    CHECK_OK("-o", "sandbox=namespace");
    CHECK(O.sandbox == VFS_SANDBOX_NAMESPACE);
    CHECK_ERR("'jail'", "-o", "sandbox=jail");

    CHECK_OK("--seccomp=log");
    CHECK(O.seccomp == VFS_SECCOMP_LOG);
    CHECK_OK("--seccomp=none");
    CHECK(O.seccomp == VFS_SECCOMP_NONE);
    CHECK_OK("--seccomp", "kill");
    CHECK(O.seccomp == VFS_SECCOMP_KILL);
    CHECK_ERR("'trap'", "--seccomp=trap");
    CHECK_ERR("--seccomp", "--seccomp");
}

static void test_bool_flags(void)
{
    static const struct {
        const char *on, *off;
        size_t off_member;
        bool has_off;
    } flags[] = {
        { "flock", "no_flock", offsetof(struct vfs_options, flock), true },
        { "posix_lock", "no_posix_lock", offsetof(struct vfs_options, posix_lock), true },
        { "writeback", "no_writeback", offsetof(struct vfs_options, writeback), true },
        { "xattr", "no_xattr", offsetof(struct vfs_options, xattr), true },
        { "allow_direct_io", "no_allow_direct_io", offsetof(struct vfs_options, allow_direct_io), true },
        { "killpriv_v2", "no_killpriv_v2", offsetof(struct vfs_options, killpriv_v2), true },
        { "announce_submounts", NULL, offsetof(struct vfs_options, announce_submounts), false },
        { "allow_root", NULL, offsetof(struct vfs_options, allow_root), false },
    };

    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        char with_value[64];

        CHECK_OK("-o", flags[i].on);
        if (!*(bool *)((char *)&O + flags[i].off_member))
            fprintf(stderr, "FAIL: -o %s did not set it\n", flags[i].on), failures++;
        if (flags[i].has_off) {
            CHECK_OK("-o", flags[i].on, "-o", flags[i].off);
            if (*(bool *)((char *)&O + flags[i].off_member))
                fprintf(stderr, "FAIL: -o %s did not clear it\n", flags[i].off), failures++;
            CHECK_OK("-o", flags[i].off, "-o", flags[i].on);
            if (!*(bool *)((char *)&O + flags[i].off_member))
                fprintf(stderr, "FAIL: last -o %s lost\n", flags[i].on), failures++;
        }
        snprintf(with_value, sizeof(with_value), "%s=1", flags[i].on);
        CHECK_ERR("takes no value", "-o", with_value);
    }

    CHECK_OK("-o", "readdirplus");
    CHECK(O.readdirplus == 1);
    CHECK_OK("-o", "no_readdirplus");
    CHECK(O.readdirplus == 0);
    CHECK_OK("-o", "no_readdirplus,readdirplus");
    CHECK(O.readdirplus == 1);
}

static void test_unsupported(void)
{
    CHECK_ERR("not supported", "-o", "xattrmap=:map::user.virtiofs.:");
    CHECK_ERR("xattrmap", "-o", "xattrmap=x");
    CHECK_ERR("not supported", "-o", "posix_acl");
    CHECK_ERR("not supported", "-o", "security_label");
    /* the "off" spellings are the default and accepted */
    CHECK_OK("-o", "no_posix_acl");
    CHECK_OK("-o", "no_security_label");
    CHECK_ERR("takes no value", "-o", "no_posix_acl=1");
}

static void test_timeout(void)
{
    CHECK_OK("-o", "timeout=0");
    CHECK(O.timeout_set && O.timeout == 0.0);
    CHECK_OK("-o", "timeout=1.5");
    CHECK(O.timeout_set && O.timeout == 1.5);
    CHECK_OK("-o", "timeout=86400");
    CHECK(O.timeout == 86400.0);
    CHECK_ERR("negative", "-o", "timeout=-1");
    CHECK_ERR("'abc'", "-o", "timeout=abc");
    CHECK_ERR("'1x'", "-o", "timeout=1x");
    CHECK_ERR("timeout", "-o", "timeout=");
    CHECK_ERR("timeout", "-o", "timeout= 1");
    CHECK_ERR("'inf'", "-o", "timeout=inf");
    CHECK_ERR("'nan'", "-o", "timeout=nan");
    CHECK_ERR("'1e999'", "-o", "timeout=1e999");
}

static void test_numbers(void)
{
    CHECK_OK("--thread-pool-size=0");
    CHECK(O.thread_pool_size == 0);
    CHECK_OK("--thread-pool-size=16");
    CHECK(O.thread_pool_size == 16);
    CHECK_OK("--thread-pool-size", "8");
    CHECK(O.thread_pool_size == 8);
    CHECK_OK("--thread-pool-size=2147483647");
    CHECK(O.thread_pool_size == 2147483647u);
    CHECK_ERR("out of range", "--thread-pool-size=2147483648");
    /* --queue-mode: default follows --thread-pool-size (upstream) */
    CHECK_OK("--thread-pool-size=0");
    CHECK(O.queue_mode == VFS_QUEUE_MODE_DEFAULT);
    CHECK(!strcmp(vfs_queue_mode_name(O.queue_mode, 0), "inline"));
    CHECK(!strcmp(vfs_queue_mode_name(O.queue_mode, 4), "pool"));
    CHECK_OK("--queue-mode=auto");
    CHECK(O.queue_mode == VFS_QUEUE_MODE_AUTO);
    CHECK_OK("--queue-mode", "pool", "--thread-pool-size=2");
    CHECK(O.queue_mode == VFS_QUEUE_MODE_POOL && O.thread_pool_size == 2);
    CHECK_OK("--queue-mode=auto", "--queue-mode=inline");
    CHECK(O.queue_mode == VFS_QUEUE_MODE_INLINE);
    CHECK_ERR("--queue-mode: invalid value 'fast'", "--queue-mode=fast");
    CHECK_ERR("--queue-mode: invalid value ''", "--queue-mode=");
    CHECK_ERR("out of range", "--thread-pool-size=99999999999999999999999");
    CHECK_ERR("'-1'", "--thread-pool-size=-1");
    CHECK_ERR("'+1'", "--thread-pool-size=+1");
    CHECK_ERR("' 1'", "--thread-pool-size= 1");
    CHECK_ERR("'12x'", "--thread-pool-size=12x");
    CHECK_ERR("'0x10'", "--thread-pool-size=0x10");
    CHECK_ERR("--thread-pool-size", "--thread-pool-size=");
    CHECK_ERR("needs an argument", "--thread-pool-size");

    CHECK_OK("--fd=3");
    CHECK(O.fd == 3);
    CHECK_OK("--fd", "0");
    CHECK(O.fd == 0);
    CHECK_ERR("'-1'", "--fd=-1");
    CHECK_ERR("'3x'", "--fd=3x");
    CHECK_ERR("out of range", "--fd=2147483648");

    CHECK_OK("--rlimit-nofile=0");
    CHECK(O.rlimit_nofile_set && O.rlimit_nofile == 0);
    CHECK_OK("--rlimit-nofile=100000");
    CHECK(O.rlimit_nofile_set && O.rlimit_nofile == 100000);
    CHECK_ERR("'-5'", "--rlimit-nofile=-5");
    CHECK_ERR("'abc'", "--rlimit-nofile=abc");
    CHECK_ERR("out of range", "--rlimit-nofile=18446744073709551616");

    CHECK_OK("-o", "max_idle_threads=5");
    CHECK(O.max_idle_threads == 5);
    CHECK_ERR("'-1'", "-o", "max_idle_threads=-1");
    CHECK_ERR("'many'", "-o", "max_idle_threads=many");
}

static void test_strings(void)
{
    CHECK_OK("--socket-path=/run/vfs.sock");
    CHECK(O.socket_path && !strcmp(O.socket_path, "/run/vfs.sock"));
    CHECK_OK("--socket-path", "/tmp/a b.sock");
    CHECK(O.socket_path && !strcmp(O.socket_path, "/tmp/a b.sock"));
    CHECK_ERR("empty", "--socket-path=");
    CHECK_ERR("needs an argument", "--socket-path");

    CHECK_OK("--socket-group=kvm");
    CHECK(O.socket_group && !strcmp(O.socket_group, "kvm"));
    CHECK_ERR("empty", "--socket-group=");

    CHECK_OK("-o", "source=/srv/share");
    CHECK(O.source && !strcmp(O.source, "/srv/share"));
    CHECK_ERR("empty", "-o", "source=");
    CHECK_ERR("needs a value", "-o", "source");
    /* a value may itself contain '=' */
    CHECK_OK("-o", "source=/srv/a=b");
    CHECK(O.source && !strcmp(O.source, "/srv/a=b"));
}

static void test_modcaps(void)
{
    CHECK_OK("-o", "modcaps=+sys_admin:-chown");
    CHECK(O.modcaps_add == 1ULL << 21);     /* CAP_SYS_ADMIN */
    CHECK(O.modcaps_drop == 1ULL << 0);     /* CAP_CHOWN */
    CHECK_OK("-o", "modcaps=+SYS_ADMIN");
    CHECK(O.modcaps_add == 1ULL << 21 && O.modcaps_drop == 0);
    CHECK_OK("-o", "modcaps=-cap_mknod");
    CHECK(O.modcaps_drop == 1ULL << 27 && O.modcaps_add == 0);
    /* within a list and across repeats: the last word on a cap wins */
    CHECK_OK("-o", "modcaps=+chown:-chown");
    CHECK(O.modcaps_add == 0 && O.modcaps_drop == 1);
    CHECK_OK("-o", "modcaps=+sys_admin", "-o", "modcaps=-fsetid");
    CHECK(O.modcaps_add == 0 && O.modcaps_drop == 1ULL << 4);
    CHECK_ERR("'bogus'", "-o", "modcaps=+bogus");
    CHECK_ERR("'sys_admin'", "-o", "modcaps=sys_admin");
    CHECK_ERR("modcaps", "-o", "modcaps=");
    CHECK_ERR("trailing", "-o", "modcaps=+chown:");
    CHECK_ERR("'+'", "-o", "modcaps=+");
    CHECK_ERR("modcaps", "-o", "modcaps=+chown::-mknod");
}

static void test_lists_and_forms(void)
{
    CHECK_OK("-o", "source=/x,cache=none,xattr");
    CHECK(O.source && !strcmp(O.source, "/x"));
    CHECK(O.cache == VFS_CACHE_NONE && O.xattr);
    CHECK_OK("-osource=/y,flock");       /* attached, as libfuse takes it */
    CHECK(O.source && !strcmp(O.source, "/y") && O.flock);
    CHECK_OK("-o", "source=/a\\,b,writeback");   /* "\," is a comma */
    CHECK(O.source && !strcmp(O.source, "/a,b") && O.writeback);
    CHECK_OK("-o", "source=/a\\\\", "-o", "xattr");
    CHECK(O.source && !strcmp(O.source, "/a\\"));
    CHECK_OK("-o", ",xattr,,posix_lock,");   /* empty items are nothing */
    CHECK(O.xattr && O.posix_lock);
    /* an error in the middle of a list names the bad item */
    CHECK_ERR("'-o bogus'", "-o", "xattr,bogus,flock");
    CHECK_ERR("'-o frob=1'", "-o", "frob=1");

    /* repeats: the last one wins */
    CHECK_OK("-o", "cache=none", "-o", "cache=always");
    CHECK(O.cache == VFS_CACHE_ALWAYS);
    CHECK_OK("-o", "cache=none,cache=auto");
    CHECK(O.cache == VFS_CACHE_AUTO);
    CHECK_OK("--thread-pool-size=1", "--thread-pool-size=2");
    CHECK(O.thread_pool_size == 2);
    CHECK_OK("-o", "source=/a", "-o", "source=/b");
    CHECK(O.source && !strcmp(O.source, "/b"));
    CHECK_OK("--socket-path=/a", "--socket-path=/b");
    CHECK(O.socket_path && !strcmp(O.socket_path, "/b"));
    CHECK_OK("-o", "timeout=5", "-o", "timeout=0.25");
    CHECK(O.timeout == 0.25);
    CHECK_OK("--seccomp=none", "--seccomp=kill");
    CHECK(O.seccomp == VFS_SECCOMP_KILL);

    /* everything at once */
    CHECK_OK("--socket-path=/s", "-o", "source=/src,cache=always,timeout=2",
             "-o", "xattr,flock,posix_lock,writeback,no_readdirplus",
             "--thread-pool-size=4", "-o", "sandbox=chroot", "--seccomp=log",
             "--syslog", "--rlimit-nofile=4096", "-o", "modcaps=+sys_admin",
             "-o", "log_level=warn", "--socket-group=kvm");
    CHECK(O.cache == VFS_CACHE_ALWAYS && O.timeout == 2.0 && O.xattr &&
          O.flock && O.posix_lock && O.writeback && O.readdirplus == 0 &&
          O.thread_pool_size == 4 && O.sandbox == VFS_SANDBOX_CHROOT &&
          O.seccomp == VFS_SECCOMP_LOG && O.syslog &&
          O.rlimit_nofile == 4096 && O.modcaps_add == 1ULL << 21 &&
          O.log_level == VFS_LOG_WARN);
}

static void test_bad_syntax(void)
{
    CHECK_ERR("'--bogus'", "--bogus");
    CHECK_ERR("'--bogus=1'", "--bogus=1");
    CHECK_ERR("'-x'", "-x");
    CHECK_ERR("'-df'", "-df");
    CHECK_ERR("'--socket=/x'", "--socket=/x");        /* no prefix matching */
    CHECK_ERR("-o needs an argument", "-o");
    CHECK_ERR("unexpected argument 'mnt'", "--socket-path=/s", "mnt");
    CHECK_ERR("'-'", "-");
    CHECK_ERR("'--'", "--");
    /* the error is reported even after valid options */
    CHECK_ERR("'--nope'", "-o", "source=/x", "--nope");
}

static void test_check(void)
{
    char dir[] = "/tmp/test_options.XXXXXX";
    char file[64], longpath[200];
    int sv[2], pfd[2];

    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        failures++;
        return;
    }
    snprintf(file, sizeof(file), "%s/file", dir);
    close(open(file, O_CREAT | O_WRONLY, 0600));

#define CHECK_CHECK(needle, ...)                                             \
    do {                                                                     \
        int _r = parse(__VA_ARGS__, NULL);                                   \
        if (_r == 0)                                                         \
            _r = vfs_options_check(&O, E, sizeof(E));                        \
        if (_r >= 0 || !strstr(E, needle) || strchr(E, '\n')) {              \
            fprintf(stderr, "FAIL %s:%d: check(%s) = %d '%s', want '%s'\n",  \
                    __FILE__, __LINE__, #__VA_ARGS__, _r, E, needle);        \
            failures++;                                                      \
        }                                                                    \
    } while (0)

    char src[128];
    snprintf(src, sizeof(src), "source=%s", dir);

    CHECK(parse("--socket-path=/tmp/x.sock", "-o", src, NULL) == 0);
    CHECK(vfs_options_check(&O, E, sizeof(E)) == 0);

    CHECK_CHECK("missing --socket-path or --fd", "-o", src);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    {
        char fdarg[32];

        snprintf(fdarg, sizeof(fdarg), "--fd=%d", sv[0]);
        CHECK_CHECK("cannot be given together", "--socket-path=/tmp/x.sock",
                    fdarg, "-o", src);
        CHECK(parse(fdarg, "-o", src, NULL) == 0);
        CHECK(vfs_options_check(&O, E, sizeof(E)) == 0);
        CHECK(pipe(pfd) == 0);
        snprintf(fdarg, sizeof(fdarg), "--fd=%d", pfd[0]);
        CHECK_CHECK("not a socket", fdarg, "-o", src);
        close(pfd[0]);
        close(pfd[1]);
        CHECK_CHECK("Bad file descriptor", fdarg, "-o", src);
    }
    close(sv[0]);
    close(sv[1]);

    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    {
        char arg[256];

        snprintf(arg, sizeof(arg), "--socket-path=%s", longpath);
        CHECK_CHECK("too long", arg, "-o", src);
    }

    CHECK_CHECK("missing -o source", "--socket-path=/tmp/x.sock");
    CHECK_CHECK("No such file or directory", "--socket-path=/tmp/x.sock",
                "-o", "source=/nonexistent/test_options");
    {
        char arg[96];

        snprintf(arg, sizeof(arg), "source=%s", file);
        CHECK_CHECK("not a directory", "--socket-path=/tmp/x.sock", "-o", arg);
    }
    CHECK_CHECK("unknown group", "--socket-path=/tmp/x.sock", "-o", src,
                "--socket-group=no-such-group-for-test");
    CHECK(parse("--socket-path=/tmp/x.sock", "-o", src, "--socket-group=0",
                NULL) == 0);
    CHECK(vfs_options_check(&O, E, sizeof(E)) == 0);    /* gid 0 exists */

    /* the control socket must stay out of the guest's reach */
    {
        char arg[256], sub[128];

        CHECK(parse("--socket-path=/tmp/x.sock", "-o", src,
                    "--control-socket=/tmp/ctl.sock", NULL) == 0);
        CHECK(vfs_options_check(&O, E, sizeof(E)) == 0);
        snprintf(arg, sizeof(arg), "--control-socket=%s/ctl.sock", dir);
        CHECK_CHECK("inside the shared directory", "--socket-path=/tmp/x.sock",
                    "-o", src, arg);
        snprintf(sub, sizeof(sub), "%s/sub", dir);
        CHECK(mkdir(sub, 0700) == 0);
        /* through "..": the check compares resolved directories */
        snprintf(arg, sizeof(arg), "--control-socket=%s/../%s/sub/c.sock",
                 dir, strrchr(dir, '/') + 1);
        CHECK_CHECK("inside the shared directory", "--socket-path=/tmp/x.sock",
                    "-o", src, arg);
        rmdir(sub);
        /* a sibling whose name starts like the share is outside */
        snprintf(arg, sizeof(arg), "--control-socket=%s-ctl.sock", dir);
        CHECK(parse("--socket-path=/tmp/x.sock", "-o", src, arg, NULL) == 0);
        CHECK(vfs_options_check(&O, E, sizeof(E)) == 0);
        CHECK_CHECK("also the --socket-path", "--socket-path=/tmp/x.sock",
                    "-o", src, "--control-socket=/tmp/x.sock");
        CHECK_CHECK("directory of", "--socket-path=/tmp/x.sock", "-o", src,
                    "--control-socket=/nonexistent/dir/c.sock");
        snprintf(arg, sizeof(arg), "--control-socket=%s", longpath);
        CHECK_CHECK("too long", "--socket-path=/tmp/x.sock", "-o", src, arg);
    }

    unlink(file);
    rmdir(dir);
}

static char *capture(void (*fn)(FILE *, void *), void *arg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (!f)
        return NULL;
    fn(f, arg);
    fclose(f);
    return buf;
}

static void help_fn(FILE *f, void *arg)
{
    vfs_options_print_help(f, "virtiofsd");
}

static void caps_fn(FILE *f, void *arg)
{
    vfs_options_print_capabilities(f);
}

static void test_output(void)
{
    static const char *const in_help[] = {
        "--help", "--version", "--print-capabilities", "-d", "-o debug",
        "--syslog", "-f ", "--daemonize", "cache=", "flock", "no_flock",
        "log_level=", "max_idle_threads", "posix_lock", "no_posix_lock",
        "readdirplus", "no_readdirplus", "sandbox=namespace|chroot|none",
        "timeout=", "writeback", "no_writeback", "xattr", "no_xattr",
        "xattrmap", "modcaps=", "--rlimit-nofile=", "allow_direct_io",
        "no_allow_direct_io", "announce_submounts", "posix_acl",
        "no_posix_acl", "security_label", "no_security_label",
        "killpriv_v2", "no_killpriv_v2", "source=PATH", "allow_root",
        "--socket-path=", "--socket-group=", "--fd=", "--thread-pool-size=",
        "--seccomp=kill|log|none", "--stats=on|off", "--control-socket=PATH",
    };
    char *help = capture(help_fn, NULL);
    char *caps = capture(caps_fn, NULL);
    char *desc;

    CHECK(help != NULL);
    for (size_t i = 0; help && i < sizeof(in_help) / sizeof(in_help[0]); i++) {
        if (!strstr(help, in_help[i])) {
            fprintf(stderr, "FAIL: --help does not mention '%s'\n", in_help[i]);
            failures++;
        }
    }
    CHECK(caps && !strcmp(caps, "{\n  \"type\": \"fs\"\n}\n"));
    free(help);
    free(caps);

    CHECK_OK("--socket-path=/s", "-o", "source=/src,cache=none,xattr",
             "-o", "sandbox=chroot,modcaps=+sys_admin:-chown",
             "--thread-pool-size=4", "-o", "timeout=2.5", "--seccomp=log",
             "--stats=off", "--control-socket=/run/c.sock");
    desc = vfs_options_describe(&O);
    CHECK(desc != NULL);
    if (desc) {
        CHECK(strstr(desc, "source=/src"));
        CHECK(strstr(desc, "socket-path=/s"));
        CHECK(strstr(desc, "cache=none"));
        CHECK(strstr(desc, "xattr=on"));
        CHECK(strstr(desc, "flock=off"));
        CHECK(strstr(desc, "sandbox=chroot"));
        CHECK(strstr(desc, "seccomp=log"));
        CHECK(strstr(desc, "thread-pool-size=4"));
        CHECK(strstr(desc, "timeout=2.5"));
        CHECK(strstr(desc, "modcaps=-chown:+sys_admin"));
        CHECK(strstr(desc, "stats=off"));
        CHECK(strstr(desc, "control-socket=/run/c.sock"));
        CHECK(!strchr(desc, '\n'));
        free(desc);
    }
    CHECK(!strcmp(vfs_cache_mode_name(VFS_CACHE_ALWAYS), "always"));
    CHECK(!strcmp(vfs_sandbox_mode_name(VFS_SANDBOX_NONE), "none"));
    CHECK(!strcmp(vfs_seccomp_mode_name(VFS_SECCOMP_LOG), "log"));
}

int main(void)
{
    vfs_options_init(&O);
    test_defaults();
    test_instrumentation();
    test_info_options();
    test_logging_and_process();
    test_cache_sandbox_seccomp();
    test_bool_flags();
    test_unsupported();
    test_timeout();
    test_numbers();
    test_strings();
    test_modcaps();
    test_lists_and_forms();
    test_bad_syntax();
    test_check();
    test_output();
    vfs_options_free(&O);
    vfs_options_free(&O);   /* idempotent */
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
