/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The generated probes behave as their backends promise, built once per
 * backend list from tests/trace/golden/test-events:
 *   - nothing is enabled at start, and a disabled probe neither prints nor
 *     evaluates its arguments;
 *   - log: trace_set_enabled() turns on exactly the events its glob
 *     matches, an enabled event prints its formatted line through the log
 *     funnel, a disabled one prints nothing; --trace lists apply in order;
 *   - usdt: a tracer's semaphore enables the probe (and only the probe);
 *   - without log, the control API answers -ENOTSUP.
 * Exit 0 pass, 1 fail.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include TRACE_EVENTS_HEADER

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

/* Log capture */
static char lines[16][256];
static enum vfs_log_level levels[16];
static int nlines;

static void sink(enum vfs_log_level level, const char *msg, void *opaque)
{
    (void)opaque;
    if (nlines < 16) {
        snprintf(lines[nlines], sizeof(lines[0]), "%s", msg);
        levels[nlines] = level;
    }
    nlines++;
}

static int evaluated;

/* An argument with a side effect: tells whether it was evaluated. */
static uint32_t arg(uint32_t v)
{
    evaluated++;
    return v;
}

static void fire_all(void)
{
    trace_ev_none();
    trace_ev_small(arg(200), -5, 65535, -300);
    trace_ev_wide(arg(0xbeef), -7, 18446744073709551615ull,
                  -9223372036854775807ll - 1);
    trace_ev_six(arg(1), 2, 3, 4, 0xabcull, 6);
    trace_ev_last(arg(42));
}

static void test_all_off(void)
{
    nlines = 0;
    evaluated = 0;
    CHECK(!trace_event_ev_none_enabled(), "enabled at start");
    CHECK(!trace_event_ev_six_enabled(), "enabled at start");
    fire_all();
    CHECK(nlines == 0, "%d lines printed with every event off", nlines);
    CHECK(evaluated == 0, "arguments evaluated %d times while disabled",
          evaluated);
    for (size_t i = 0; i < trace_event_count(); i++)
        CHECK(!trace_event_log_enabled(i), "event %zu on at start", i);
}

static void test_table(void)
{
    static const char *const names[] = {
        "ev_none", "ev_small", "ev_wide", "ev_six", "ev_last",
    };

    CHECK(trace_event_count() == 5, "%zu events", trace_event_count());
    for (size_t i = 0; i < 5 && i < trace_event_count(); i++)
        CHECK(!strcmp(trace_event_get(i)->name, names[i]), "event %zu is %s",
              i, trace_event_get(i)->name);
    CHECK(trace_event_get(5) == NULL, "past the end");
    CHECK(!strcmp(trace_event_get(TRACE_EVENT_EV_WIDE)->args,
                  "uint32_t x, int32_t y, uint64_t u, int64_t s"),
          "args '%s'", trace_event_get(TRACE_EVENT_EV_WIDE)->args);
    CHECK(!strcmp(trace_backends(), TRACE_BACKENDS), "backends %s",
          trace_backends());
}

#if TRACE_BACKEND_LOG
static void test_log(void)
{
    char err[256];
    int r;

    /* one event: only it prints, with its format and arguments */
    r = trace_set_enabled("ev_wide", true);
    CHECK(r == 1, "matched %d", r);
    CHECK(trace_event_log_enabled(TRACE_EVENT_EV_WIDE), "not on");
    CHECK(trace_event_ev_wide_enabled(), "not enabled");
    nlines = 0;
    evaluated = 0;
    fire_all();
    CHECK(nlines == 1, "%d lines, expected 1", nlines);
    CHECK(!strcmp(lines[0], "trace: ev_wide x 0xbeef y -7 "
                  "u 18446744073709551615 s -9223372036854775808"),
          "got '%s'", lines[0]);
    CHECK(levels[0] == VFS_LOG_INFO, "level %d", levels[0]);
    CHECK(evaluated == 1, "arguments of enabled/disabled events evaluated "
          "%d times, expected 1", evaluated);

    /* a glob; types, PRI macros, %% and zero arguments format right */
    r = trace_set_enabled("ev_*", true);
    CHECK(r == 5, "ev_* matched %d", r);
    nlines = 0;
    fire_all();
    CHECK(nlines == 5, "%d lines", nlines);
    CHECK(!strcmp(lines[0], "trace: ev_none nothing to say"), "'%s'", lines[0]);
    CHECK(!strcmp(lines[1], "trace: ev_small a 200 b -5 c 65535 d -300"),
          "'%s'", lines[1]);
    CHECK(!strcmp(lines[3], "trace: ev_six 1 2 3 4 abc 6 (100%)"), "'%s'",
          lines[3]);
    CHECK(!strcmp(lines[4], "trace: ev_last unique 42"), "'%s'", lines[4]);

    /* off again: nothing */
    r = trace_set_enabled("*", false);
    CHECK(r == 5, "* matched %d", r);
    nlines = 0;
    evaluated = 0;
    fire_all();
    CHECK(nlines == 0 && evaluated == 0, "%d lines, %d evaluations after off",
          nlines, evaluated);

    /* a --trace list: in order, "-" turns off, ? and [] globs */
    r = trace_enable_list("ev_*,-ev_s*,ev_s?x", err, sizeof(err));
    CHECK(r == 0, "list: %d %s", r, err);
    CHECK(trace_event_log_enabled(TRACE_EVENT_EV_NONE), "ev_none off");
    CHECK(!trace_event_log_enabled(TRACE_EVENT_EV_SMALL), "ev_small on");
    CHECK(trace_event_log_enabled(TRACE_EVENT_EV_SIX), "ev_six off");
    CHECK(trace_event_log_enabled(TRACE_EVENT_EV_LAST), "ev_last off");
    nlines = 0;
    fire_all();
    CHECK(nlines == 4, "%d lines for 4 enabled events", nlines);

    /* what matches nothing is an error naming it; earlier items stay */
    trace_set_enabled("*", false);
    err[0] = '\0';
    r = trace_enable_list("ev_last,,nosuch_*", err, sizeof(err));
    CHECK(r == -ENOENT, "r %d", r);
    CHECK(strstr(err, "'nosuch_*'") != NULL, "err '%s'", err);
    CHECK(trace_event_log_enabled(TRACE_EVENT_EV_LAST), "ev_last not applied");
    CHECK(trace_set_enabled("", true) == -EINVAL, "empty pattern");
    CHECK(trace_set_enabled("ev_[", true) == -ENOENT, "bad glob");
    CHECK(trace_enable_list(NULL, err, sizeof(err)) == 0, "NULL list");

    /* the log level still applies: info lines vanish at warn */
    trace_set_enabled("ev_last", true);
    vfs_log_set_level(VFS_LOG_WARN);
    nlines = 0;
    trace_ev_last(1);
    CHECK(nlines == 0, "printed below the log level");
    vfs_log_set_level(VFS_LOG_INFO);
    trace_set_enabled("*", false);
}
#else
static void test_no_log(void)
{
    char err[256] = "";

    CHECK(!trace_log_available(), "log available");
    CHECK(trace_set_enabled("ev_*", true) == -ENOTSUP, "set_enabled");
    CHECK(trace_enable_list("ev_none", err, sizeof(err)) == -ENOTSUP,
          "enable_list");
    CHECK(strstr(err, "no log backend") != NULL, "err '%s'", err);
    nlines = 0;
    fire_all();
    CHECK(nlines == 0, "printed without a log backend");
}
#endif

#if TRACE_BACKEND_USDT
/*
 * What the kernel does when bpftrace or perf attaches: the semaphore goes
 * non-zero. The probe site (a nop) then runs with its arguments set up.
 */
static void test_usdt_semaphore(void)
{
    vfs_ev_six_semaphore = 1;
    CHECK(trace_event_ev_six_enabled(), "semaphore did not enable it");
    CHECK(!trace_event_ev_last_enabled(), "another event enabled");
    nlines = 0;
    evaluated = 0;
    fire_all();
    CHECK(evaluated == 1, "%d evaluations, expected ev_six's only", evaluated);
    CHECK(nlines == 0, "the USDT probe printed %d log lines", nlines);
    vfs_ev_six_semaphore = 0;
    CHECK(!trace_event_ev_six_enabled(), "still enabled");
}
#endif

int main(void)
{
    vfs_log_set_sink(sink, NULL);
    vfs_log_set_level(VFS_LOG_INFO);
    printf("backends: %s\n", trace_backends());
    test_table();
    test_all_off();
#if TRACE_BACKEND_LOG
    test_log();
#else
    test_no_log();
#endif
#if TRACE_BACKEND_USDT
    test_usdt_semaphore();
#endif
    test_all_off();
    vfs_log_set_sink(NULL, NULL);
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    else
        printf("ok\n");
    return failures ? 1 : 0;
}
