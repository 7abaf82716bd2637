/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_control_abuse: the control socket survives malformed commands,
 * over-long lines, a megabyte of garbage, more clients than it serves,
 * clients that vanish mid-command or never read their answers; after each
 * of these a fresh `mode get` answers and the daemon still serves FUSE
 * requests on its virtqueues, and at the end it exits cleanly (sanitizer
 * builds: no report). The daemon runs with -o sandbox=none (seccomp still
 * on, in kill mode) so that an ASan build's leak check covers the control
 * code: in the other sandboxes the sanitized daemon skips it (main.c).
 */
#include "ctl_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define LIMIT 16        /* CTL_MAX_CLIENTS */
#define LINE_MAX_BYTES 4095

static struct ch H;
static unsigned nqueues;

/* The daemon answers on the control socket and on every request queue. */
static void check_alive(const char *after)
{
    struct jm *v = ctl_cmd_once(H.ctl, "mode get");
    struct fuse_attr_out a;

    CHECK(ctl_ok(v), "after %s: mode get failed", after);
    CHECK(jm_count(jm_get(v, "queues")) == nqueues,
          "after %s: %zu queues", after, jm_count(jm_get(v, "queues")));
    jm_free(v);
    for (unsigned q = 1; q <= H.queues; q++) {
        int r = fc_getattr(fc_chan_get(H.c, q), FUSE_ROOT_ID, &a);

        CHECK(r == 0, "after %s: GETATTR on queue %u: %d", after, q, r);
    }
    CHECK(ch_alive(&H), "after %s: the daemon died", after);
}

/* trace on/off switches the log backend of exactly the matching events. */
static void test_trace_switch(void)
{
    struct jm *v = ctl_cmd_once(H.ctl, "trace list");
    size_t on = 0;

    CHECK(ctl_ok(v), "trace list failed");
    if (!strstr(jm_str(jm_get(v, "backends"), ""), "log")) {
        fprintf(stderr, "note: no log trace backend in this build, trace on/off not checked\n");
        jm_free(v);
        return;
    }
    jm_free(v);
    v = ctl_cmd_once(H.ctl, "trace on req_*");

    CHECK(ctl_ok(v) && jm_u64(jm_get(v, "matched"), 0) >= 2,
          "trace on req_* failed");
    jm_free(v);
    v = ctl_cmd_once(H.ctl, "trace list");
    CHECK(ctl_ok(v), "trace list failed");
    for (size_t i = 0; v && i < jm_count(jm_get(v, "events")); i++) {
        const struct jm *e = jm_at(jm_get(v, "events"), i);
        const char *name = jm_str(jm_get(e, "name"), "");
        bool log = jm_bool(jm_get(e, "log"), false);

        CHECK(log == (strncmp(name, "req_", 4) == 0), "event %s log %d", name, log);
        on += log;
    }
    jm_free(v);
    CHECK(on >= 2, "no req_* event enabled");
    v = ctl_cmd_once(H.ctl, "trace off *");
    CHECK(ctl_ok(v), "trace off * failed");
    jm_free(v);
}

/* Every bad command is answered with ok:false and an error, one line each. */
static void test_malformed(void)
{
    static const char *const bad[] = {
        "mode set", "mode set pool 0", "mode set pool 99999",
        "mode set pool -1", "mode set pool 4 queue", "mode set pool 4 queue 99",
        "mode set pool 4 queue 1 extra", "mode set inline queue x",
        "mode set inline queue 18446744073709551617", "mode set fast",
        "mode get queue", "mode get everything", "mode bogus",
        "pool size", "pool size x", "pool size 0", "pool size 2000",
        "pool size 2 queue -1", "pool", "pool depth 3", "stats now",
        "stats reset please", "help me", "version 2",
        "\x01\x02\x7f\xff\xfe", "\"quoted\"", "{\"json\":1}", "MODE GET",
        "a b c d e f g h i j k l m n o p q r s", "modeget", "mode\tset\tpool\t0",
        "trace", "trace on", "trace on nosuch_event", "trace off a b",
        "trace list all",
    };
    int fd = ctl_open(H.ctl);

    CHECK(fd >= 0, "connect: %s", strerror(-fd));
    if (fd < 0)
        return;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct jm *v = ctl_cmd(fd, bad[i]);

        CHECK(v && !ctl_ok(v) && jm_str(jm_get(v, "error"), NULL),
              "'%s' not refused", bad[i]);
        jm_free(v);
    }
    /* a NUL inside a line does not cut it short into a valid command */
    CHECK(ctl_write(fd, "version\0junk\n", 13) == 0, "write");
    {
        char *l = ctl_read_line(fd, 10000);

        CHECK(l && strstr(l, "NUL byte"), "NUL in a line: %s", l ? l : "-");
        free(l);
    }
    /* blank lines get no answer: the next answer is version's */
    CHECK(ctl_write(fd, "\n \n\t\r\n", 6) == 0, "write");
    {
        struct jm *v = ctl_cmd(fd, "version");

        CHECK(ctl_ok(v) && jm_u64(jm_get(v, "protocol"), 0) >= 1,
              "version after blank lines");
        jm_free(v);
    }
    /* several commands in one write, CRLF, surrounding blanks */
    CHECK(ctl_write(fd, "  version \r\nmode get queue 1\nhelp\n", 35) == 0,
          "write");
    for (int i = 0; i < 3; i++) {
        char *l = ctl_read_line(fd, 10000);
        struct jm *v = l ? jm_parse(l, strlen(l), NULL, 0) : NULL;

        CHECK(ctl_ok(v), "pipelined command %d: %s", i, l ? l : "(none)");
        if (i == 1)
            CHECK(jm_count(jm_get(v, "queues")) == 1, "one queue");
        jm_free(v);
        free(l);
    }
    close(fd);
    check_alive("malformed commands");
}

/* A line over the limit is answered once and skipped; the client stays. */
static void test_long_lines(void)
{
    char *big = malloc(200000);
    int fd = ctl_open(H.ctl);
    char *l;

    CHECK(fd >= 0 && big, "setup");
    if (fd < 0 || !big) {
        free(big);
        return;
    }
    /* the longest line accepted: an unknown command, not "too long" */
    memset(big, 'a', LINE_MAX_BYTES);
    big[LINE_MAX_BYTES] = '\n';
    CHECK(ctl_write(fd, big, LINE_MAX_BYTES + 1) == 0, "write");
    l = ctl_read_line(fd, 10000);
    CHECK(l && strstr(l, "unknown command") && !strstr(l, "too long"),
          "4095-byte line: %.100s", l ? l : "(none)");
    free(l);
    /* one byte more: too long */
    memset(big, 'b', LINE_MAX_BYTES + 1);
    big[LINE_MAX_BYTES + 1] = '\n';
    CHECK(ctl_write(fd, big, LINE_MAX_BYTES + 2) == 0, "write");
    l = ctl_read_line(fd, 10000);
    CHECK(l && strstr(l, "too long"), "4096-byte line: %.100s",
          l ? l : "(none)");
    free(l);
    /* 150 KB in one line, then a good command on the same connection */
    memset(big, 'c', 150000);
    memcpy(big + 150000, "\nversion\n", 9);
    CHECK(ctl_write(fd, big, 150009) == 0, "write");
    l = ctl_read_line(fd, 10000);
    CHECK(l && strstr(l, "too long"), "150 KB line: %.100s", l ? l : "(none)");
    free(l);
    l = ctl_read_line(fd, 10000);
    CHECK(l && strstr(l, "\"ok\":true") && strstr(l, "\"version\""),
          "version after the long line: %.100s", l ? l : "(none)");
    free(l);
    close(fd);
    free(big);
    check_alive("over-long lines");
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/*
 * 1 MiB of random bytes (some of them newlines) while reading whatever
 * comes back; every answer is a JSON error line.
 */
static void test_garbage(bool newlines, bool read_answers)
{
    const size_t total = 1u << 20;
    uint8_t *g = malloc(total);
    uint64_t seed = 0x1234567887654321ull + newlines + 2 * read_answers;
    size_t sent = 0, got = 0, lines = 0, bad_lines = 0;
    char *rbuf = malloc(1 << 16), *partial = NULL;
    size_t plen = 0;
    int fd = ctl_open(H.ctl);

    CHECK(fd >= 0 && g && rbuf, "setup");
    if (fd < 0 || !g || !rbuf)
        goto out;
    for (size_t i = 0; i < total; i++) {
        g[i] = (uint8_t)rnd(&seed);
        if (!newlines && g[i] == '\n')
            g[i] = 'n';
        else if (newlines && (g[i] & 0x3f) == 0)
            g[i] = '\n';    /* lines of ~64 bytes: ~16k answers */
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    while (sent < total) {
        struct pollfd pfd = {
            .fd = fd,
            .events = POLLOUT | (read_answers ? POLLIN : 0),
        };
        int r = poll(&pfd, 1, read_answers ? 10000 : 2000);

        if (r <= 0) {
            /* not reading: the daemon stops reading too (backpressure) */
            CHECK(!read_answers, "stalled after %zu bytes", sent);
            break;
        }
        if (pfd.revents & POLLIN) {
            ssize_t n = recv(fd, rbuf, 1 << 16, 0);

            for (ssize_t k = 0; k < n; k++) {
                char *np;

                if (rbuf[k] != '\n') {
                    np = realloc(partial, plen + 1);
                    if (!np)
                        break;
                    partial = np;
                    partial[plen++] = rbuf[k];
                    continue;
                }
                lines++;
                np = realloc(partial, plen + 1);
                if (np) {
                    struct jm *v;

                    partial = np;
                    partial[plen] = '\0';
                    v = jm_parse(partial, plen, NULL, 0);
                    if (!v || ctl_ok(v) || !jm_get(v, "error"))
                        bad_lines++;
                    jm_free(v);
                }
                plen = 0;
            }
            got += n > 0 ? (size_t)n : 0;
        }
        if (pfd.revents & POLLOUT) {
            ssize_t n = send(fd, g + sent, total - sent, MSG_NOSIGNAL);

            if (n < 0 && errno != EAGAIN) {
                CHECK(false, "send: %s", strerror(errno));
                break;
            }
            sent += n > 0 ? (size_t)n : 0;
        }
        if (pfd.revents & (POLLERR | POLLHUP))
            break;
    }
    fprintf(stderr, "garbage (newlines %d, reading %d): sent %zu, got %zu "
            "bytes, %zu answer lines\n", newlines, read_answers, sent, got,
            lines);
    if (read_answers) {
        CHECK(sent == total, "only %zu of %zu bytes taken", sent, total);
        CHECK(bad_lines == 0, "%zu answers were not JSON errors", bad_lines);
        CHECK(lines > 0, "no answers");
    }
    if (read_answers && !newlines) {
        /*
         * The client is still served: end the long line, ask again. Its
         * one "too long" answer may still be on the way: skip it.
         */
        bool ok = false;

        fcntl(fd, F_SETFL, 0);
        CHECK(ctl_write(fd, "\nversion\n", 9) == 0, "write");
        for (int i = 0; i < 2 && !ok; i++) {
            char *l = ctl_read_line(fd, 10000);

            ok = l && strstr(l, "\"ok\":true") && strstr(l, "\"version\"");
            free(l);
        }
        CHECK(ok, "version after 1 MiB without a newline");
    }
    /* abrupt close, answers unread */
out:
    if (fd >= 0)
        close(fd);
    free(g);
    free(rbuf);
    free(partial);
    check_alive("1 MiB of garbage");
}

/* More connections than the limit: the extra ones are told and closed. */
static void test_many_clients(void)
{
    int fds[LIMIT + 8];
    int refused = 0;

    for (int i = 0; i < LIMIT + 8; i++)
        fds[i] = ctl_open(H.ctl);
    /* the first LIMIT are served */
    for (int i = 0; i < LIMIT; i++) {
        struct jm *v = fds[i] >= 0 ? ctl_cmd(fds[i], "version") : NULL;

        CHECK(ctl_ok(v), "client %d of %d not served", i, LIMIT);
        jm_free(v);
    }
    for (int i = LIMIT; i < LIMIT + 8; i++) {
        char *l = fds[i] >= 0 ? ctl_read_line(fds[i], 10000) : NULL;
        char c;

        if (l && strstr(l, "too many control clients")) {
            /* then EOF */
            if (recv(fds[i], &c, 1, 0) == 0)
                refused++;
        }
        free(l);
    }
    CHECK(refused == 8, "%d of 8 extra clients refused cleanly", refused);
    /* a slot that frees up is taken again */
    close(fds[0]);
    close(fds[LIMIT]);
    {
        struct jm *v = NULL;

        for (int tries = 0; tries < 50 && !ctl_ok(v); tries++) {
            jm_free(v);
            /* the daemon notices the close on its next pass */
            usleep(20000);
            fds[0] = ctl_open(H.ctl);
            v = fds[0] >= 0 ? ctl_cmd(fds[0], "version") : NULL;
            if (!ctl_ok(v) && fds[0] >= 0)
                close(fds[0]);
        }
        CHECK(ctl_ok(v), "no slot after a client left");
        jm_free(v);
    }
    for (int i = 0; i < LIMIT + 8; i++) {
        if (fds[i] >= 0 && i != LIMIT)
            close(fds[i]);
    }
    check_alive("too many clients");
}

/* Clients that leave mid-command, mid-line, or with a reset. */
static void test_disconnects(void)
{
    static const char *const halves[] = {
        "stats\n", "mode se", "mode set pool 3 queue 1\nmode get", "st",
        "mode set inline queue 1\n", "stats\nstats\nstats\nstats\n",
    };

    for (int i = 0; i < 300; i++) {
        int fd = ctl_open(H.ctl);
        const char *h = halves[i % 6];

        CHECK(fd >= 0, "connect %d: %s", i, strerror(-fd));
        if (fd < 0)
            break;
        ctl_write(fd, h, strlen(h));
        if (i % 3 == 0) {
            /* RST instead of FIN */
            struct linger lg = { .l_onoff = 1, .l_linger = 0 };

            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        close(fd);
    }
    /* half-close: the answer still comes, then EOF */
    {
        int fd = ctl_open(H.ctl);
        char *l;
        char c;

        CHECK(fd >= 0, "connect");
        if (fd >= 0) {
            ctl_write(fd, "mode get queue 1", 16);  /* no newline */
            shutdown(fd, SHUT_WR);
            l = ctl_read_line(fd, 10000);
            CHECK(l && strstr(l, "\"ok\":true"),
                  "unterminated last line at EOF: %s", l ? l : "(none)");
            CHECK(recv(fd, &c, 1, 0) == 0, "no EOF after the answer");
            free(l);
            close(fd);
        }
    }
    /* put queue 1 back in a known mode */
    jm_free(ctl_cmd_once(H.ctl, "mode set inline all"));
    check_alive("abrupt disconnects");
}

/*
 * A client that sends many commands and reads nothing for a while: the
 * daemon keeps serving the rings and other clients meanwhile, then every
 * answer arrives, in order.
 */
static void test_slow_reader(void)
{
    const int n = 300;
    size_t len = (size_t)n * 6;
    char *cmds = malloc(len);
    int fd = ctl_open(H.ctl);
    int answers = 0;

    CHECK(fd >= 0 && cmds, "setup");
    if (fd < 0 || !cmds) {
        free(cmds);
        return;
    }
    for (int i = 0; i < n; i++)
        memcpy(cmds + i * 6, "stats\n", 6);
    /* non-blocking: the daemon may stop reading us once answers pile up */
    fcntl(fd, F_SETFL, O_NONBLOCK);
    {
        ssize_t w = send(fd, cmds, len, MSG_NOSIGNAL);

        CHECK(w > 0, "send: %s", strerror(errno));
        len = w > 0 ? (size_t)w : 0;
    }
    sleep(1);
    check_alive("a client that does not read");
    fcntl(fd, F_SETFL, 0);
    /* the rest of the commands, then read everything */
    {
        size_t rest = (size_t)n * 6 - len;
        pid_t child = 0;

        if (rest) {
            /* a child writes while we read: neither side can block */
            child = fork();
            if (child == 0) {
                ctl_write(fd, cmds + len, rest);
                _exit(0);
            }
        }
        for (int i = 0; i < n; i++) {
            char *l = ctl_read_line(fd, 20000);

            if (!l)
                break;
            if (!strncmp(l, "{\"ok\":true,\"stats\":", 19))
                answers++;
            free(l);
        }
        while (child > 0 && waitpid(child, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    CHECK(answers == n, "%d of %d stats answers", answers, n);
    close(fd);
    free(cmds);
    check_alive("a slow reader");
}

static int count_fds(pid_t pid)
{
    char path[64];
    struct dirent *de;
    DIR *d;
    int n = 0;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    d = opendir(path);
    if (!d)
        return -1;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* utime + stime of @pid in clock ticks, -1 if unknown */
static long cpu_ticks(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long ut, st;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    p = fgets(buf, sizeof(buf), f);
    fclose(f);
    p = p ? strrchr(buf, ')') : NULL;
    /* after "(comm)": state ppid pgrp session tty tpgid flags minflt
     * cminflt majflt cmajflt utime stime */
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                     "%lu %lu", &ut, &st) != 2)
        return -1;
    return (long)(ut + st);
}

/*
 * The daemon runs out of fds: accept() fails, the listener stays readable.
 * The main loop must neither spin nor stop serving the rings, and takes
 * clients again once fds are back.
 */
static void test_fd_exhaustion(void)
{
    pid_t pid = vuf_daemon_pid(H.dmn);
    struct rlimit old, lim;
    int fds[6], n = count_fds(pid);
    long t0, t1;

    if (n < 0 || prlimit(pid, RLIMIT_NOFILE, NULL, &old) < 0) {
        fprintf(stderr, "fd exhaustion: cannot inspect the daemon; skipped\n");
        return;
    }
    lim = old;
    lim.rlim_cur = (rlim_t)n + 1;   /* one client, then EMFILE */
    CHECK(prlimit(pid, RLIMIT_NOFILE, &lim, NULL) == 0, "prlimit: %s",
          strerror(errno));
    for (int i = 0; i < 6; i++)
        fds[i] = ctl_open(H.ctl);   /* the kernel queues them */
    usleep(300000);
    t0 = cpu_ticks(pid);
    sleep(1);
    t1 = cpu_ticks(pid);
    fprintf(stderr, "fd exhaustion: %d fds, limit %d: %ld ticks of CPU in 1 s\n",
            n, n + 1, t1 - t0);
    CHECK(t0 >= 0 && t1 - t0 < 30, "the main loop spins: %ld ticks in 1 s",
          t1 - t0);
    for (unsigned q = 1; q <= H.queues; q++) {
        struct fuse_attr_out a;
        int r = fc_getattr(fc_chan_get(H.c, q), FUSE_ROOT_ID, &a);

        CHECK(r == 0, "GETATTR on queue %u without fds: %d", q, r);
    }
    CHECK(prlimit(pid, RLIMIT_NOFILE, &old, NULL) == 0, "prlimit: %s",
          strerror(errno));
    for (int i = 0; i < 6; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    /* within the accept pause (1 s) and a bit */
    {
        struct jm *v = NULL;

        for (int tries = 0; tries < 30 && !ctl_ok(v); tries++) {
            jm_free(v);
            usleep(100000);
            v = ctl_cmd_once(H.ctl, "version");
        }
        CHECK(ctl_ok(v), "no control client served after fds came back");
        jm_free(v);
    }
    check_alive("fd exhaustion");
}

int main(int argc, char **argv)
{
    struct ch_opts o = { .queues = 2, .pool = 2,
                         .extra = { "-o", "sandbox=none" } };
    int rc = ch_start(&H, argc, argv, &o);

    if (rc != T_PASS)
        return rc;
    {
        struct jm *v = ctl_cmd_once(H.ctl, "mode get");
        struct stat st;

        nqueues = (unsigned)jm_count(jm_get(v, "queues"));
        CHECK(ctl_ok(v) && nqueues >= 3, "mode get: %u queues", nqueues);
        jm_free(v);
        /* the socket is the owner's only */
        CHECK(stat(H.ctl, &st) == 0 && (st.st_mode & 0777) == 0600,
              "control socket mode %o", st.st_mode & 0777);
    }
    check_alive("start");
    test_malformed();
    check_alive("malformed commands");
    test_trace_switch();
    test_long_lines();
    test_garbage(false, true);
    test_garbage(true, true);
    test_garbage(true, false);
    test_garbage(false, false);
    test_many_clients();
    test_disconnects();
    test_slow_reader();
    test_fd_exhaustion();
    /* every slot came back: LIMIT clients at once are served again */
    {
        int fds[LIMIT];
        int served = 0;

        for (int i = 0; i < LIMIT; i++) {
            fds[i] = ctl_open(H.ctl);
        }
        for (int i = 0; i < LIMIT; i++) {
            struct jm *v = fds[i] >= 0 ? ctl_cmd(fds[i], "version") : NULL;

            served += ctl_ok(v);
            jm_free(v);
        }
        for (int i = 0; i < LIMIT; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        CHECK(served == LIMIT, "%d of %d clients served at the end", served,
              LIMIT);
    }
    rc = ch_stop(&H);
    if (rc == T_PASS && t_failures) {
        fprintf(stderr, "%d check(s) failed\n", t_failures);
        rc = T_FAIL;
    }
    if (rc == T_PASS)
        printf("ok\n");
    return rc;
}
