/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon's log backend: with --trace=GLOBS each enabled event prints
 * one formatted line per hit (counted per opcode against a known
 * workload), events the globs do not match print nothing, a daemon
 * without --trace prints no trace line at all, and a glob that matches no
 * event stops the daemon at startup with a message naming it.
 *
 *   test_trace_daemon_log DAEMON BACKENDS [POOL]
 *
 * Exit 0 pass, 1 fail, 77 if the build has no log backend.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "trace_daemon.h"

static int failures;

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                   \
            fprintf(stderr, "\n");                                          \
            failures++;                                                     \
        }                                                                   \
    } while (0)

struct log_counts {
    unsigned int trace_lines;
    unsigned int done[64];          /* req_done lines by opcode (< 64) */
    unsigned int done_bad;          /* req_done lines that did not parse */
    unsigned int start;
    unsigned int popped;
    unsigned int other;             /* trace lines of other events */
};

static void read_log(const char *path, struct log_counts *c)
{
    FILE *f = fopen(path, "r");
    char line[1024];

    memset(c, 0, sizeof(*c));
    if (!f) {
        perror(path);
        failures++;
        return;
    }
    while (fgets(line, sizeof(line), f)) {
        char *p = strstr(line, "trace: ");
        unsigned long long unique, w, s, tot;
        unsigned int q, op;

        if (!p)
            continue;
        c->trace_lines++;
        if (sscanf(p, "trace: req_done queue %u unique %llu opcode %u "
                   "wait_ns %llu service_ns %llu total_ns %llu",
                   &q, &unique, &op, &w, &s, &tot) == 6) {
            /* the clock is on (--stats default): total covers the parts */
            if (op < 64 && tot >= w && tot >= s)
                c->done[op]++;
            else
                c->done_bad++;
        } else if (!strncmp(p, "trace: req_done ", 16)) {
            c->done_bad++;
        } else if (!strncmp(p, "trace: req_start ", 17)) {
            c->start++;
        } else if (!strncmp(p, "trace: req_popped ", 18)) {
            c->popped++;
        } else {
            c->other++;
        }
    }
    fclose(f);
}

static unsigned int workload_total(void)
{
    unsigned int n = 0;

    for (unsigned int i = 0; i < tload_nopcodes; i++)
        n += tload_counts[i].n;
    return n;
}

/* One daemon run with @extra arguments and the workload; @c gets its log. */
static int run_workload(const char *daemon, unsigned int pool,
                        const char *const *extra, struct log_counts *c)
{
    struct tdaemon t;
    int r;

    if (tdaemon_start(&t, daemon, pool, extra) != T_PASS) {
        tdaemon_cleanup(&t);
        return T_FAIL;
    }
    r = tload_run(&t);
    CHECK(r == 0, "workload: %s", strerror(-r));
    r = tdaemon_stop(&t);
    read_log(t.log, c);
    if (r != T_PASS || failures)
        tdaemon_dump_log(&t);
    tdaemon_cleanup(&t);
    return r;
}

static void test_enabled(const char *daemon, unsigned int pool)
{
    /* repeatable; "-GLOB" takes back what an earlier glob turned on */
    const char *extra[] = { "--trace=req_done",
                            "--trace=req_*,-req_popped,-req_sizes,-req_re*",
                            NULL };
    struct log_counts c;

    if (run_workload(daemon, pool, extra, &c) != T_PASS) {
        failures++;
        return;
    }
    for (unsigned int i = 0; i < tload_nopcodes; i++) {
        uint32_t op = tload_counts[i].opcode;

        CHECK(c.done[op] == tload_counts[i].n, "opcode %u: %u req_done lines, "
              "%u requests", op, c.done[op], tload_counts[i].n);
    }
    /* INIT came before the workload and is traced too */
    CHECK(c.done[FUSE_INIT] == 1, "%u INIT lines", c.done[FUSE_INIT]);
    CHECK(c.done_bad == 0, "%u req_done lines malformed", c.done_bad);
    CHECK(c.start == workload_total() + 1, "%u req_start lines for %u requests",
          c.start, workload_total() + 1);
    CHECK(c.popped == 0, "disabled req_popped printed %u lines", c.popped);
    CHECK(c.other == 0, "%u lines of events not asked for", c.other);
    printf("--trace: %u trace lines, counts per opcode match\n", c.trace_lines);
}

static void test_disabled(const char *daemon, unsigned int pool)
{
    struct log_counts c;

    if (run_workload(daemon, pool, NULL, &c) != T_PASS) {
        failures++;
        return;
    }
    CHECK(c.trace_lines == 0, "%u trace lines without --trace", c.trace_lines);
    printf("no --trace: no trace lines\n");
}

/* Exits 1 before serving, naming the pattern. */
static void test_bad_pattern(const char *daemon)
{
    char out[] = "/tmp/vfs-trace-badpat.XXXXXX", buf[4096] = "";
    int fd = mkstemp(out), st = 0;
    pid_t pid;
    ssize_t n;

    if (fd < 0) {
        perror("mkstemp");
        failures++;
        return;
    }
    pid = fork();
    if (pid == 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execl(daemon, daemon, "--socket-path=/tmp/vfs-trace-never.sock",
              "-o", "source=/tmp", "--trace=req_done,nosuch_event", NULL);
        _exit(127);
    }
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid, "fork/wait");
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status 0x%x", st);
    n = pread(fd, buf, sizeof(buf) - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    CHECK(strstr(buf, "no trace event matches 'nosuch_event'") != NULL,
          "output: %s", buf);
    close(fd);
    unlink(out);
    printf("--trace=nosuch_event: refused at startup\n");
}

int main(int argc, char **argv)
{
    unsigned int pool;

    if (argc < 3) {
        fprintf(stderr, "usage: %s DAEMON BACKENDS [POOL]\n", argv[0]);
        return 1;
    }
    if (!strstr(argv[2], "log")) {
        printf("SKIP: built with trace_backends=%s (no log backend)\n",
               argv[2]);
        return 77;
    }
    pool = argc > 3 ? (unsigned int)atoi(argv[3]) : 0;
    test_enabled(argv[1], pool);
    test_disabled(argv[1], pool);
    test_bad_pattern(argv[1]);
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
