/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_cli_args: the daemon binary answers --help, --version and
 * --print-capabilities like upstream and exits 0; every bad command line
 * (bad option or value, missing or bad source, none or both of
 * --socket-path/--fd) exits 1 with one line on stderr, nothing on stdout,
 * and no socket created.
 *
 * usage: test_cli_args /path/to/virtiofsd
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_helpers.h"
#include "config.h"

static const char *daemon_path;
static char dir[256];

/* Run the daemon with a NULL-terminated list of arguments. */
static int run(char **out, char **err, const char *const *args)
{
    char *argv[32];
    int n = 0;

    argv[n++] = (char *)daemon_path;
    for (; *args && n < 31; args++)
        argv[n++] = (char *)*args;
    argv[n] = NULL;
    return cli_run(argv, out, err, 10000);
}

static int count_lines(const char *s)
{
    int n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void expect_ok_stdout(const char *const *args, const char *what)
{
    char *out, *err;
    int st = run(&out, &err, args);

    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "FAIL: %s: status 0x%x, stderr: %s\n", what, st, err);
        cli_failures++;
    }
    free(out);
    free(err);
}

/*
 * Exit 1, exactly one line on stderr containing @needle, empty stdout,
 * and the socket path (always sock in the temp dir) not created.
 */
static void expect_fail(const char *needle, const char *const *args)
{
    struct stat sb;
    char *out, *err;
    int st = run(&out, &err, args);

    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 1 ||
        !strstr(err, needle) || count_lines(err) != 1 || out[0] ||
        lstat(cli_path(dir, "sock"), &sb) == 0) {
        fprintf(stderr, "FAIL: args");
        for (const char *const *a = args; *a; a++)
            fprintf(stderr, " %s", *a);
        fprintf(stderr, ": status 0x%x, want exit 1 with '%s'\n"
                "  stdout: %s\n  stderr: %s", st, needle, out, err);
        cli_failures++;
    }
    unlink(cli_path(dir, "sock"));
    free(out);
    free(err);
}

static void test_help(void)
{
    /* every option we implement, as the user would search for it */
    static const char *const options[] = {
        "-h", "--help", "-V", "--version", "--print-capabilities", "-d",
        "-o debug", "--syslog", "-f", "--daemonize", "cache=", "auto",
        "always", "none", "flock", "no_flock", "posix_lock",
        "no_posix_lock", "log_level=", "max_idle_threads", "readdirplus",
        "no_readdirplus", "sandbox=", "namespace", "chroot", "timeout=",
        "writeback", "no_writeback", "xattr", "no_xattr", "xattrmap",
        "modcaps=", "--rlimit-nofile=", "allow_direct_io",
        "no_allow_direct_io", "announce_submounts", "posix_acl",
        "no_posix_acl", "security_label", "no_security_label",
        "killpriv_v2", "no_killpriv_v2", "source=", "allow_root",
        "--socket-path=", "--socket-group=", "--fd=",
        "--thread-pool-size=", "--seccomp=", "kill|log|none",
        "--queue-mode=", "--pool-sched=", "--auto-slow-us=",
    };
    const char *const a_long[] = { "--help", NULL };
    const char *const a_short[] = { "-h", NULL };
    char *out, *err, *out2, *err2;
    int st = run(&out, &err, a_long);
    int st2 = run(&out2, &err2, a_short);

    CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(!strncmp(out, "usage: ", 7));
    CHECK(err[0] == '\0');
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
        if (!strstr(out, options[i])) {
            fprintf(stderr, "FAIL: --help does not mention '%s'\n", options[i]);
            cli_failures++;
        }
    }
    CHECK(st2 >= 0 && WIFEXITED(st2) && WEXITSTATUS(st2) == 0);
    CHECK(!strcmp(out, out2));
    free(out);
    free(err);
    free(out2);
    free(err2);
}

static void test_version_and_caps(void)
{
    const char *const a_ver[] = { "--version", NULL };
    const char *const a_v[] = { "-V", NULL };
    const char *const a_caps[] = { "--print-capabilities", NULL };
    char first[128];
    char *out, *err, *nl;
    unsigned int major = 0, minor = 0;
    int st;

    st = run(&out, &err, a_ver);
    CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    snprintf(first, sizeof(first), "virtiofsd-instrumented %s\n", VFS_VERSION);
    CHECK(!strncmp(out, first, strlen(first)));
    nl = strchr(out, '\n');
    CHECK(nl && sscanf(nl + 1, "using FUSE kernel interface version %u.%u",
                       &major, &minor) == 2);
    /* the version libfuse answers INIT with: 7.x, at least what 3.14 has */
    CHECK(major == 7 && minor >= 31);
    CHECK(count_lines(out) == 2);
    free(out);
    free(err);
    expect_ok_stdout(a_v, "-V");

    st = run(&out, &err, a_caps);
    CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* byte for byte what QEMU 7.2's virtiofsd prints */
    CHECK(!strcmp(out, "{\n  \"type\": \"fs\"\n}\n"));
    CHECK(err[0] == '\0');
    free(out);
    free(err);

    /* info options do not need a socket or a source */
    {
        const char *const a[] = { "--print-capabilities", "-o", "cache=none", NULL };

        expect_ok_stdout(a, "--print-capabilities with other options");
    }
}

static void test_errors(void)
{
    char sock[300], src[300], file_src[300], fdarg[32];

    snprintf(sock, sizeof(sock), "--socket-path=%s", cli_path(dir, "sock"));
    snprintf(src, sizeof(src), "source=%s", cli_path(dir, "share"));
    snprintf(file_src, sizeof(file_src), "source=%s", cli_path(dir, "file"));
    snprintf(fdarg, sizeof(fdarg), "--fd=%d", 0);

#define FAILS(needle, ...)                                                   \
    do {                                                                     \
        const char *const _a[] = { __VA_ARGS__, NULL };                      \
        expect_fail(needle, _a);                                             \
    } while (0)

    /* syntax: each error names what was wrong */
    FAILS("'--bogus'", sock, "-o", src, "--bogus");
    FAILS("'-x'", sock, "-o", src, "-x");
    FAILS("'-o bogus'", sock, "-o", src, "-o", "bogus");
    FAILS("'-o frob=3'", sock, "-o", src, "-o", "xattr,frob=3");
    FAILS("-o needs an argument", sock, "-o", src, "-o");
    FAILS("unexpected argument 'mnt'", sock, "-o", src, "mnt");
    FAILS("cache", sock, "-o", src, "-o", "cache=bad");
    FAILS("log_level", sock, "-o", src, "-o", "log_level=loud");
    FAILS("sandbox", sock, "-o", src, "-o", "sandbox=jail");
    FAILS("--seccomp", sock, "-o", src, "--seccomp=trap");
    FAILS("takes no value", sock, "-o", src, "-o", "xattr=yes");
    FAILS("needs a value", sock, "-o", src, "-o", "cache");
    /* numbers: negative, junk, overflow */
    FAILS("--thread-pool-size", sock, "-o", src, "--thread-pool-size=-1");
    FAILS("--thread-pool-size", sock, "-o", src, "--thread-pool-size=12x");
    FAILS("out of range", sock, "-o", src,
          "--thread-pool-size=99999999999999999999");
    FAILS("--rlimit-nofile", sock, "-o", src, "--rlimit-nofile=abc");
    FAILS("--auto-slow-us", sock, "-o", src, "--auto-slow-us=0");
    FAILS("--auto-slow-us", sock, "-o", src, "--auto-slow-us=1000001");
    FAILS("--auto-slow-us", sock, "-o", src, "--auto-slow-us=25us");
    FAILS("--auto-slow-us", sock, "-o", src, "--auto-slow-us=-5");
    FAILS("--fd", "--fd=-3", "-o", src);
    FAILS("timeout", sock, "-o", src, "-o", "timeout=-1");
    FAILS("timeout", sock, "-o", src, "-o", "timeout=soon");
    FAILS("max_idle_threads", sock, "-o", src, "-o", "max_idle_threads=x");
    FAILS("modcaps", sock, "-o", src, "-o", "modcaps=+nonsense");
    /* not implemented: refused, not ignored */
    FAILS("not supported", sock, "-o", src, "-o", "posix_acl");
    FAILS("not supported", sock, "-o", src, "-o", "security_label");
    FAILS("not supported", sock, "-o", src, "-o", "xattrmap=:map::a.:");
    /* the source */
    FAILS("missing -o source", sock);
    FAILS("No such file or directory", sock, "-o", "source=/nonexistent/vfs-cli");
    FAILS("not a directory", sock, "-o", file_src);
    /* the endpoint: exactly one of --socket-path / --fd */
    FAILS("missing --socket-path or --fd", "-o", src);
    FAILS("cannot be given together", sock, fdarg, "-o", src);
    FAILS("not a socket", fdarg, "-o", src);   /* stdin is /dev/null */
    FAILS("unknown group", sock, "-o", src, "--socket-group=no-such-grp-vfs");
#undef FAILS
}

int main(int argc, char **argv)
{
    FILE *f;

    if (argc < 2) {
        fprintf(stderr, "usage: %s /path/to/virtiofsd\n", argv[0]);
        return 1;
    }
    daemon_path = argv[1];
    if (access(daemon_path, X_OK) != 0) {
        fprintf(stderr, "SKIP: %s not executable\n", daemon_path);
        return 77;
    }
    if (!cli_tmpdir(dir, sizeof(dir))) {
        perror("tmpdir");
        return 1;
    }
    f = fopen(cli_path(dir, "file"), "w");
    if (f)
        fclose(f);
    /* for "--fd=0 is not a socket": the child inherits our stdin */
    if (!freopen("/dev/null", "r", stdin))
        return 1;

    test_help();
    test_version_and_caps();
    test_errors();

    cli_rmtree(dir);
    if (!cli_failures)
        printf("ok\n");
    return cli_result();
}
