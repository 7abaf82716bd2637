/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Helpers for the CLI/sandbox tests: run the daemon binary, capture its
 * output, wait for its socket and its exit, and do one vhost-user round
 * trip (GET_FEATURES) to prove it serves.
 */
#ifndef CLI_HELPERS_H
#define CLI_HELPERS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

extern int cli_failures;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);  \
            cli_failures++;                                                  \
        }                                                                    \
    } while (0)

/* exit status of a test: 1 if any CHECK failed, else 0 */
int cli_result(void);

/*
 * Run @argv to completion (killed after @timeout_ms), stdout and stderr
 * captured into malloc'd strings. Returns the wait status or -1.
 */
int cli_run(char *const argv[], char **out, char **err, int timeout_ms);

struct cli_spawn {
    char *const *argv;
    const char *log_path;   /* stdout+stderr go here (appended) */
    int keep_fd;            /* an fd to pass through (not CLOEXEC), or -1 */
    uid_t uid;              /* 0: as we are; else setgid/setuid to it */
};

/* Start in the background; returns the pid or -1. */
pid_t cli_spawn(const struct cli_spawn *s);

/* Wait up to @timeout_ms for @pid; returns its status, -1 on timeout. */
int cli_wait(pid_t pid, int timeout_ms);

/* Kill with SIGKILL and reap (cleanup after a failed check). */
void cli_kill(pid_t pid);

/* Poll until @path is a socket; false after @timeout_ms. */
bool cli_wait_socket(const char *path, int timeout_ms);

int cli_connect(const char *path);

/*
 * VHOST_USER_GET_FEATURES over @fd; true if a well-formed reply came
 * within @timeout_ms. @features may be NULL.
 */
bool cli_vu_get_features(int fd, uint64_t *features, int timeout_ms);

/* Wait until reading @fd gives EOF (the peer closed); false on timeout. */
bool cli_wait_eof(int fd, int timeout_ms);

/* malloc'd file contents ("" if missing). */
char *cli_slurp(const char *path);

/* "dir/name" into a static rotating buffer. */
const char *cli_path(const char *dir, const char *name);

/* Make a temporary directory with a "share" subdirectory; false on error. */
bool cli_tmpdir(char *buf, size_t len);
void cli_rmtree(const char *dir);

#endif
