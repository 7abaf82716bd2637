/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tracetool.py's output for every backend equals the golden files, and it
 * refuses inputs the backends cannot carry.
 *
 *   test_trace_golden PYTHON TRACETOOL GOLDEN_DIR
 *
 * GOLDEN_DIR holds test-events and one directory per backend list
 * (usdt, log, nop, usdt-log) with trace_events.h and trace_events.c.
 * TRACE_GOLDEN_UPDATE=1 rewrites them instead of comparing (review the
 * diff before committing). Exit 0 pass, 1 fail.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *python, *tracetool, *golden;
static char tmpdir[] = "/tmp/vfs-trace-golden.XXXXXX";
static int failures;

/* Run argv, stdout/stderr to @log (or inherited). Returns the exit status. */
static int run(char *const argv[], const char *log)
{
    pid_t pid;
    int st;

    /* or the child's freopen() writes our buffered lines a second time */
    fflush(stdout);
    pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        if (log) {
            FILE *f = freopen(log, "w", stdout);

            if (!f || dup2(STDOUT_FILENO, STDERR_FILENO) < 0)
                _exit(127);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    if (waitpid(pid, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
        fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        if (buf) {
            buf[n] = '\0';
            *len = (size_t)n;
        }
    }
    fclose(f);
    return buf;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    int ok;

    if (!f)
        return -errno;
    ok = fputs(text, f) >= 0;
    ok = (fclose(f) == 0) && ok;
    return ok ? 0 : -EIO;
}

/* Generate @fmt (h or c) for @backends and compare with / update golden. */
static void check_one(const char *dir, const char *backends, const char *fmt,
                      bool update)
{
    char in[512], out[512], gold[512], bk[128], fm[16];
    char *argv[] = { (char *)python, (char *)tracetool, bk, fm, in, out, NULL };
    char *a, *b;
    size_t alen = 0, blen = 0;
    int st;

    snprintf(in, sizeof(in), "%s/test-events", golden);
    snprintf(out, sizeof(out), "%s/%s.%s", tmpdir, dir, fmt);
    snprintf(gold, sizeof(gold), "%s/%s/trace_events.%s", golden, dir, fmt);
    snprintf(bk, sizeof(bk), "--backends=%s", backends);
    snprintf(fm, sizeof(fm), "--format=%s", fmt);
    st = run(argv, NULL);
    if (st != 0) {
        fprintf(stderr, "FAIL: tracetool %s %s exited %d\n", bk, fm, st);
        failures++;
        return;
    }
    if (update) {
        char d[512];

        snprintf(d, sizeof(d), "%s/%s", golden, dir);
        mkdir(d, 0755);
        a = slurp(out, &alen);
        if (!a || write_file(gold, a) < 0) {
            fprintf(stderr, "FAIL: cannot update %s\n", gold);
            failures++;
        } else {
            printf("updated %s\n", gold);
        }
        free(a);
        return;
    }
    a = slurp(out, &alen);
    b = slurp(gold, &blen);
    if (!b) {
        fprintf(stderr, "FAIL: no golden file %s\n", gold);
        failures++;
    } else if (!a || alen != blen || memcmp(a, b, alen)) {
        char *diff[] = { (char *)"diff", (char *)"-u", gold, out, NULL };

        fprintf(stderr, "FAIL: %s differs from the generator's output "
                "(TRACE_GOLDEN_UPDATE=1 regenerates it):\n", gold);
        run(diff, NULL);
        failures++;
    } else {
        printf("ok %s/trace_events.%s\n", dir, fmt);
    }
    free(a);
    free(b);
}

/* The generator must refuse @text with a message naming the problem. */
static void check_refused(const char *what, const char *text,
                          const char *backends, const char *expect)
{
    char in[512], out[512], log[512], bk[128];
    char *argv[] = { (char *)python, (char *)tracetool, bk,
                     (char *)"--format=h", in, out, NULL };
    char *msg;
    size_t len = 0;
    int st;

    snprintf(in, sizeof(in), "%s/bad-events", tmpdir);
    snprintf(out, sizeof(out), "%s/bad.h", tmpdir);
    snprintf(log, sizeof(log), "%s/bad.log", tmpdir);
    snprintf(bk, sizeof(bk), "--backends=%s", backends);
    if (write_file(in, text) < 0) {
        fprintf(stderr, "FAIL: cannot write %s\n", in);
        failures++;
        return;
    }
    st = run(argv, log);
    msg = slurp(log, &len);
    if (st == 0) {
        fprintf(stderr, "FAIL: %s was accepted\n", what);
        failures++;
    } else if (!msg || !strstr(msg, expect)) {
        fprintf(stderr, "FAIL: %s: expected a message with '%s', got: %s\n",
                what, expect, msg ? msg : "(none)");
        failures++;
    } else {
        printf("ok refused: %s\n", what);
    }
    free(msg);
}

int main(int argc, char **argv)
{
    static const char *const variants[][2] = {
        { "usdt", "usdt" },
        { "log", "log" },
        { "nop", "nop" },
        /* spelt in the other order: the output must not depend on it */
        { "usdt-log", "log,usdt" },
    };
    const char *u = getenv("TRACE_GOLDEN_UPDATE");
    bool update = u && *u && strcmp(u, "0");
    char cmd[600];

    if (argc != 4) {
        fprintf(stderr, "usage: %s PYTHON TRACETOOL GOLDEN_DIR\n", argv[0]);
        return 1;
    }
    python = argv[1];
    tracetool = argv[2];
    golden = argv[3];
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }

    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        check_one(variants[i][0], variants[i][1], "h", update);
        check_one(variants[i][0], variants[i][1], "c", update);
    }

    check_refused("a float argument", "ev(float f) \"%u\"\n", "usdt",
                  "not allowed");
    check_refused("a pointer argument", "ev(const char *s) \"%s\"\n", "log",
                  "bad argument");
    check_refused("seven arguments",
                  "ev(uint32_t a, uint32_t b, uint32_t c, uint32_t d, "
                  "uint32_t e, uint32_t f, uint32_t g) "
                  "\"%u %u %u %u %u %u %u\"\n", "usdt", "at most 6");
    check_refused("too few conversions", "ev(uint32_t a, uint32_t b) \"%u\"\n",
                  "log", "1 conversions for 2 arguments");
    check_refused("a string conversion", "ev(uint32_t a) \"%s\"\n", "log",
                  "unsupported conversion");
    check_refused("an event defined twice",
                  "ev(uint32_t a) \"%u\"\nev(uint32_t a) \"%u\"\n", "log",
                  "defined twice");
    check_refused("a missing format", "ev(uint32_t a)\n", "log",
                  "missing format");
    check_refused("nop with another backend", "ev(uint32_t a) \"%u\"\n",
                  "nop,log", "cannot be combined");
    check_refused("an unknown backend", "ev(uint32_t a) \"%u\"\n", "dtrace",
                  "unknown backend");

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
