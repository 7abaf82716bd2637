/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Shared setup for the control-socket tests: our daemon with
 * --control-socket, driven by the userspace frontend (bench/vufront), plus
 * a small blocking client for the control socket that parses answers with
 * json_mini.
 *
 * Arguments every test takes: --daemon PATH (or $VUF_DAEMON; skip if not
 * executable), --ctl PATH (virtiofsctl, for the tests that run it).
 */
#ifndef CTL_HARNESS_H
#define CTL_HARNESS_H

#include <stdbool.h>
#include <stdio.h>

#include "fuse_client.h"
#include "json_mini.h"
#include "vufront.h"

#define T_PASS 0
#define T_FAIL 1
#define T_SKIP 77

struct ch {
    const char *daemon;
    const char *ctl_exe;
    char dir[256];
    char share[300];
    char sock[300];
    char ctl[300];      /* the control socket */
    char log[300];
    vuf_daemon *dmn;
    vuf_dev *dev;
    fc *c;
    unsigned queues;    /* request queues */
};

struct ch_opts {
    unsigned queues;            /* request queues (default 1) */
    unsigned pool;              /* --thread-pool-size */
    unsigned queue_size;        /* 0: 128 */
    const char *extra[8];       /* more daemon arguments, NULL-terminated */
};

/* T_PASS, T_SKIP (no daemon) or T_FAIL (everything cleaned up). */
int ch_start(struct ch *h, int argc, char **argv, const struct ch_opts *o);
/* Disconnect; the daemon must exit 0 within 10 s (a sanitizer report or a
 * crash fails the test); protocol violations fail it too. */
int ch_stop(struct ch *h);
void ch_dump_log(struct ch *h);
/* The daemon is still running. */
bool ch_alive(struct ch *h);

/* ---- control socket client ---- */

/* Connected fd, or -errno. */
int ctl_open(const char *path);
/* Write all of @buf (blocking). 0 or -errno. */
int ctl_write(int fd, const void *buf, size_t len);
/* One line (malloc'd, newline stripped) within @timeout_ms, or NULL
 * (timeout, EOF, error). */
char *ctl_read_line(int fd, int timeout_ms);
/* Send @line + '\n', parse the one-line answer. NULL on any failure. */
struct jm *ctl_cmd(int fd, const char *line);
/* ctl_cmd on a fresh connection. */
struct jm *ctl_cmd_once(const char *path, const char *line);
/* Answer has "ok":true. */
bool ctl_ok(const struct jm *v);

extern int t_failures;
#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);   \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
            t_failures++;                                                     \
        }                                                                     \
    } while (0)
#define CHECK_EQ(a, b)                                                        \
    CHECK((long long)(a) == (long long)(b), "%s = %lld, %s = %lld", #a,       \
          (long long)(a), #b, (long long)(b))

#endif
