/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * bpftrace attached to the running daemon's USDT probes counts exactly the
 * requests the frontend sent, per opcode, at every probe on the request
 * path (popped, sizes, start, reply, notify, done), and start reports the
 * mode the queue runs in.
 *
 *   test_trace_bpftrace DAEMON BACKENDS [POOL [SCRIPTS_DIR]]
 *
 * With SCRIPTS_DIR (tracepoints/), each shipped *.bt script is then run
 * against the same daemon under GETATTR load and must print its maps.
 *
 * Synchronisation: bpftrace attaches its probes one by one, in script
 * order, so the test sends STATFS requests until one of them was seen by
 * every probe (req_done, the last one attached, sees that the others did),
 * then zeroes the counts and runs the workload (trace_daemon.c). STATFS
 * is not part of the workload and is left out of the comparison.
 *
 * Exit 0 pass, 1 fail, 77 (saying why) without root, bpftrace, BPF or the
 * usdt backend: never a silent pass.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "trace_daemon.h"

#define MAX_OUT (1 << 20)

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

struct tracer {
    pid_t pid;
    int out;            /* its stdout+stderr */
    char buf[MAX_OUT];
    size_t len;
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Read what bpftrace printed, for up to @ms. Returns false at EOF. */
static bool tracer_read(struct tracer *t, int ms)
{
    struct pollfd pfd = { .fd = t->out, .events = POLLIN };
    ssize_t n;

    if (poll(&pfd, 1, ms) <= 0)
        return true;
    if (t->len >= MAX_OUT - 1) {
        /*
         * Full (reqlog.bt prints a line per request): keep draining so
         * bpftrace never blocks on a full pipe and can still exit.
         */
        char sink[4096];

        return read(t->out, sink, sizeof(sink)) > 0;
    }
    n = read(t->out, t->buf + t->len, MAX_OUT - 1 - t->len);
    if (n <= 0)
        return false;
    t->len += (size_t)n;
    t->buf[t->len] = '\0';
    return true;
}

static int tracer_start(struct tracer *t, const char *script)
{
    int p[2];

    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    t->len = 0;
    t->buf[0] = '\0';
    t->pid = fork();
    if (t->pid < 0)
        return -errno;
    if (t->pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        dup2(p[1], STDERR_FILENO);
        /* line-buffered: the marker must arrive while we wait for it */
        execlp("bpftrace", "bpftrace", "-B", "line", script, NULL);
        _exit(127);
    }
    close(p[1]);
    t->out = p[0];
    return 0;
}

/*
 * SIGINT: bpftrace prints its maps and exits. Collects all output.
 *
 * bpftrace 0.17 can miss a SIGINT that lands just before it blocks in
 * epoll_wait() (seen ~1 run in 10 here): it then sleeps until the next
 * probe event. So while it has not exited, repeat the signal and make an
 * event: a STATFS through @t (left out of every comparison).
 */
static int tracer_stop(struct tracer *t, struct tdaemon *d)
{
    uint64_t end = now_ms() + 15000, next_poke = now_ms() + 300;
    struct fuse_statfs_out sf;
    bool reaped = false;
    int st = 0;

    kill(t->pid, SIGINT);
    while (!reaped && now_ms() < end) {
        if (!tracer_read(t, 50)) {
            /* EOF: it closed its output and is about to be reapable */
            reaped = waitpid(t->pid, &st, 0) == t->pid;
            break;
        }
        reaped = waitpid(t->pid, &st, WNOHANG) == t->pid;
        if (!reaped && now_ms() >= next_poke) {
            kill(t->pid, SIGINT);
            if (d)
                fc_statfs(d->req, FUSE_ROOT_ID, &sf);
            next_poke = now_ms() + 300;
        }
    }
    for (int i = 0; reaped && i < 1000 && tracer_read(t, 0); i++)
        ;
    if (!reaped) {
        fprintf(stderr, "bpftrace %d did not exit 15 s after SIGINT\n",
                (int)t->pid);
        kill(t->pid, SIGKILL);
        waitpid(t->pid, &st, 0);
    }
    close(t->out);
    return st;
}

/* Can we load BPF at all? bpftrace says why not; show it. */
static bool bpf_works(void)
{
    int st = system("bpftrace -e 'BEGIN { exit(); }' >/tmp/vfs-trace-bpfcheck.log 2>&1");
    FILE *f;
    char line[256];

    if (st == 0)
        return true;
    printf("SKIP: BPF is not available here (bpftrace -e 'BEGIN { exit(); }' "
           "failed):\n");
    f = fopen("/tmp/vfs-trace-bpfcheck.log", "r");
    while (f && fgets(line, sizeof(line), f))
        printf("  %s", line);
    if (f)
        fclose(f);
    return false;
}

/*
 * Every probe on the request path, keyed by opcode (looked up by unique
 * for the probes that do not carry it). MARK: a STATFS was seen by every
 * probe, so all are attached; counts restart from there.
 */
static int write_script(const char *path, const char *bin, pid_t pid)
{
    FILE *f = fopen(path, "w");

    if (!f)
        return -errno;
    fprintf(f,
        "usdt:%1$s:vfs:req_popped /pid == %2$d/ {\n"
        "    @op[arg2] = arg3; @seen[arg2] = 1; @popped[arg3] = count();\n"
        "    @queue[arg3, arg0] = count();\n"
        "}\n"
        "usdt:%1$s:vfs:req_sizes /pid == %2$d/ {\n"
        "    @seen[arg1] |= 2; @sizes[@op[arg1]] = count();\n"
        "}\n"
        "usdt:%1$s:vfs:req_start /pid == %2$d/ {\n"
        "    @seen[arg1] |= 4; @start[@op[arg1]] = count();\n"
        "    @mode[@op[arg1], arg2] = count();\n"
        "}\n"
        "usdt:%1$s:vfs:req_reply /pid == %2$d/ {\n"
        "    @seen[arg1] |= 8; @reply[@op[arg1]] = count();\n"
        "}\n"
        "usdt:%1$s:vfs:notify_sent /pid == %2$d/ {\n"
        "    @seen[arg1] |= 16; @notify[@op[arg1]] = count();\n"
        "}\n"
        "usdt:%1$s:vfs:notify_suppressed /pid == %2$d/ {\n"
        "    @seen[arg1] |= 16; @notify[@op[arg1]] = count();\n"
        "}\n"
        "usdt:%1$s:vfs:req_done /pid == %2$d/ {\n"
        "    @done[arg2] = count();\n"
        "    if (arg2 == 17 && @seen[arg1] == 31 && !@marked) {\n"
        "        @marked = 1;\n"
        "        clear(@popped); clear(@sizes); clear(@start); clear(@mode);\n"
        "        clear(@reply); clear(@notify); clear(@done); clear(@queue);\n"
        "        printf(\"MARK %%llu\\n\", arg1);\n"
        "    }\n"
        "    delete(@seen[arg1]);\n"
        "}\n"
        "END { clear(@op); clear(@seen); clear(@marked); }\n",
        bin, (int)pid);
    return fclose(f) == 0 ? 0 : -EIO;
}

/* "@name[KEY]: N" or "@name[K1, K2]: N" in bpftrace's output. */
static long lookup(const char *out, const char *name, long k1, long k2)
{
    char key[96];
    const char *p;

    if (k2 >= 0)
        snprintf(key, sizeof(key), "@%s[%ld, %ld]: ", name, k1, k2);
    else
        snprintf(key, sizeof(key), "@%s[%ld]: ", name, k1);
    p = strstr(out, key);
    return p ? strtol(p + strlen(key), NULL, 10) : 0;
}

/* Sum of every entry of @name whose key is not STATFS. */
static long total_except_statfs(const char *out, const char *name)
{
    char prefix[64];
    const char *p = out;
    long sum = 0;

    snprintf(prefix, sizeof(prefix), "@%s[", name);
    while ((p = strstr(p, prefix))) {
        char *end;
        long k = strtol(p + strlen(prefix), &end, 10);
        const char *colon = strstr(end, "]: ");

        if (colon && k != FUSE_STATFS)
            sum += strtol(colon + 3, NULL, 10);
        p += strlen(prefix);
    }
    return sum;
}

/*
 * Run a shipped script against the daemon for a moment of GETATTR load:
 * it must attach, exit 0 on SIGINT and print @expect.
 */
/*
 * bpftrace 0.17 exits 2 when it cannot detach a uprobe through the legacy
 * tracefs interface (tracefs not mounted: "open(.../uprobe_events)" plus
 * "failed to detach probe"), and warns when it cannot raise RLIMIT_MEMLOCK.
 * Both happen after (or regardless of) a successful run; any other ERROR
 * line is a real failure.
 */
static bool only_benign_errors(const char *out)
{
    const char *l = out;

    while (l && *l) {
        const char *nl = strchr(l, '\n');
        size_t n = nl ? (size_t)(nl - l) : strlen(l);
        char line[512];

        snprintf(line, sizeof(line), "%.*s", (int)(n < 511 ? n : 511), l);
        if (strncmp(line, "ERROR:", 6) == 0 &&
            !strstr(line, "failed to detach probe") &&
            !strstr(line, "RLIMIT_MEMLOCK"))
            return false;
        l = nl ? nl + 1 : NULL;
    }
    return true;
}

static void check_script(struct tdaemon *t, const char *dir, const char *name,
                         const char *daemon, pid_t serving, const char *expect)
{
    static struct tracer sc;
    char path[512], pidarg[32];
    struct fuse_attr_out a;
    uint64_t end;
    int p[2], st;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(pidarg, sizeof(pidarg), "%d", (int)serving);
    if (pipe2(p, O_CLOEXEC) < 0) {
        failures++;
        return;
    }
    sc.len = 0;
    sc.buf[0] = '\0';
    sc.pid = fork();
    if (sc.pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        dup2(p[1], STDERR_FILENO);
        execlp("bpftrace", "bpftrace", "-B", "line", path, daemon, pidarg,
               NULL);
        _exit(127);
    }
    close(p[1]);
    sc.out = p[0];
    end = now_ms() + 15000;
    while (!strstr(sc.buf, "Attaching") && now_ms() < end &&
           tracer_read(&sc, 100))
        ;
    /* probes attach one by one after that line: keep the load going */
    end = now_ms() + 1500;
    while (now_ms() < end) {
        if (fc_getattr(t->req, FUSE_ROOT_ID, &a) < 0)
            break;
        tracer_read(&sc, 10);
    }
    st = tracer_stop(&sc, t);
    /*
     * tracer_stop() repeats SIGINT every 300 ms; one that lands while
     * bpftrace is already detaching kills it with SIGINT, which is ours.
     */
    CHECK((WIFEXITED(st) && (WEXITSTATUS(st) == 0 || only_benign_errors(sc.buf))) ||
          (WIFSIGNALED(st) && WTERMSIG(st) == SIGINT && only_benign_errors(sc.buf)),
          "%s: status 0x%x, output:\n%s", name, st, sc.buf);
    CHECK(strstr(sc.buf, expect) != NULL, "%s printed no '%s':\n%s", name,
          expect, sc.buf);
    if (strstr(sc.buf, expect))
        printf("ok %s prints %s\n", name, expect);
}

int main(int argc, char **argv)
{
    static struct tracer tr;
    const char *daemon;
    char script[] = "/tmp/vfs-trace-bt.XXXXXX";
    unsigned int pool, expect_mode, total = 0;
    struct tdaemon t;
    struct fuse_statfs_out sf;
    bool marked = false;
    uint64_t deadline;
    pid_t serving;
    int fd, r, st;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3) {
        fprintf(stderr, "usage: %s DAEMON BACKENDS [POOL [SCRIPTS_DIR]]\n",
                argv[0]);
        return 1;
    }
    daemon = argv[1];
    pool = argc > 3 ? (unsigned int)atoi(argv[3]) : 0;
    expect_mode = pool ? 1 : 0;     /* FV_MODE_POOL : FV_MODE_INLINE */
    if (!strstr(argv[2], "usdt")) {
        printf("SKIP: built with trace_backends=%s (no usdt probes)\n", argv[2]);
        return 77;
    }
    if (geteuid() != 0) {
        printf("SKIP: attaching BPF to USDT probes needs root\n");
        return 77;
    }
    if (system("command -v bpftrace >/dev/null 2>&1") != 0) {
        printf("SKIP: bpftrace is not installed (Debian package bpftrace)\n");
        return 77;
    }
    if (!bpf_works())
        return 77;

    if (tdaemon_start(&t, daemon, pool, NULL) != T_PASS) {
        tdaemon_cleanup(&t);
        return 1;
    }
    serving = tdaemon_serving_pid(&t);
    fd = mkstemp(script);
    if (fd < 0 || write_script(script, daemon, serving) < 0) {
        perror("script");
        return 1;
    }
    close(fd);
    r = tracer_start(&tr, script);
    CHECK(r == 0, "bpftrace: %s", strerror(-r));

    /* until every probe saw one STATFS (bpftrace attaches in ~1-3 s) */
    deadline = now_ms() + 20000;
    while (!r && now_ms() < deadline) {
        if (fc_statfs(t.req, FUSE_ROOT_ID, &sf) < 0)
            break;
        if (!tracer_read(&tr, 100))
            break;
        if (strstr(tr.buf, "MARK ")) {
            marked = true;
            break;
        }
    }
    if (!marked) {
        fprintf(stderr, "FAIL: bpftrace never saw a request at every probe "
                "(20 s). Its output:\n%s\n", tr.buf);
        tracer_stop(&tr, &t);
        tdaemon_stop(&t);
        tdaemon_dump_log(&t);
        tdaemon_cleanup(&t);
        unlink(script);
        return 1;
    }

    r = tload_run(&t);
    CHECK(r == 0, "workload: %s", strerror(-r));
    /* the last request's req_done fires just after its reply is visible */
    usleep(200 * 1000);
    st = tracer_stop(&tr, &t);
    CHECK(WIFEXITED(st) || WIFSIGNALED(st), "bpftrace status 0x%x", st);

    for (unsigned int i = 0; i < tload_nopcodes; i++) {
        long op = tload_counts[i].opcode, n = tload_counts[i].n;
        long q = tload_counts[i].queue;

        total += (unsigned int)n;
        CHECK(lookup(tr.buf, "popped", op, -1) == n, "opcode %ld popped %ld, "
              "sent %ld", op, lookup(tr.buf, "popped", op, -1), n);
        CHECK(lookup(tr.buf, "queue", op, q) == n, "opcode %ld on queue %ld: "
              "%ld, sent %ld", op, q, lookup(tr.buf, "queue", op, q), n);
        CHECK(lookup(tr.buf, "sizes", op, -1) == n, "opcode %ld sizes %ld",
              op, lookup(tr.buf, "sizes", op, -1));
        CHECK(lookup(tr.buf, "start", op, -1) == n, "opcode %ld start %ld",
              op, lookup(tr.buf, "start", op, -1));
        CHECK(lookup(tr.buf, "mode", op, expect_mode) == n, "opcode %ld "
              "started in mode %u: %ld", op, expect_mode,
              lookup(tr.buf, "mode", op, expect_mode));
        CHECK(lookup(tr.buf, "reply", op, -1) == n, "opcode %ld reply %ld",
              op, lookup(tr.buf, "reply", op, -1));
        CHECK(lookup(tr.buf, "notify", op, -1) == n, "opcode %ld notify %ld",
              op, lookup(tr.buf, "notify", op, -1));
        CHECK(lookup(tr.buf, "done", op, -1) == n, "opcode %ld done %ld",
              op, lookup(tr.buf, "done", op, -1));
    }
    /* nothing else was counted (an opcode 0 key = a lost popped) */
    CHECK(total_except_statfs(tr.buf, "popped") == total, "popped total %ld",
          total_except_statfs(tr.buf, "popped"));
    CHECK(total_except_statfs(tr.buf, "start") == total, "start total %ld",
          total_except_statfs(tr.buf, "start"));
    CHECK(total_except_statfs(tr.buf, "reply") == total, "reply total %ld",
          total_except_statfs(tr.buf, "reply"));
    CHECK(total_except_statfs(tr.buf, "done") == total, "done total %ld",
          total_except_statfs(tr.buf, "done"));

    if (argc > 4) {
        check_script(&t, argv[4], "latency.bt", daemon, serving,
                     "@service_ns[GETATTR]");
        check_script(&t, argv[4], "wait-by-mode.bt", daemon, serving,
                     pool ? "@wait_ns[pool]" : "@wait_ns[inline]");
        check_script(&t, argv[4], "per-kick.bt", daemon, serving,
                     "@reqs_per_kick[1]");
        check_script(&t, argv[4], "reqlog.bt", daemon, serving, " GETATTR ");
    }
    if (tdaemon_stop(&t) != T_PASS)
        failures++;
    if (failures || getenv("TRACE_TEST_VERBOSE")) {
        fprintf(stderr, "---- bpftrace output ----\n%s\n", tr.buf);
        tdaemon_dump_log(&t);
    } else {
        printf("bpftrace counted %u requests over %u opcodes exactly at "
               "7 probes (pool %u)\n", total, tload_nopcodes, pool);
    }
    tdaemon_cleanup(&t);
    unlink(script);
    return failures ? 1 : 0;
}
