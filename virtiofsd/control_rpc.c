/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Control-socket commands (CONTROL.md has the grammar and the answers).
 * One table carries every command's words, handler and help line, so
 * "help" and the dispatcher cannot disagree.
 *
 * Runs on the vhost-user thread (control.h), hence without locks of its
 * own: dispatch_set_mode() is thread-safe against the queue threads, and
 * queue start/stop cannot run while a command does.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "control.h"
#include "dispatch.h"
#include "log.h"
#include "trace_control.h"

/* Words of one command line. */
#define RPC_MAX_WORDS 16
/* How much of an offending word an error message quotes. */
#define RPC_QUOTE_MAX 40

struct rpc {
    struct fv_dev *dev;
    struct ctl_buf *out;
    const char *line;
};

typedef void (*rpc_fn)(struct rpc *r, int argc, char **argv);

struct rpc_cmd {
    const char *w1;
    const char *w2;         /* NULL: a one-word command */
    rpc_fn fn;
    const char *usage;
    const char *help;
};

/* ---- JSON output ---- */

void ctl_json_string(struct ctl_buf *out, const char *s)
{
    ctl_buf_addc(out, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            ctl_buf_addc(out, '\\');
            ctl_buf_addc(out, (char)*p);
        } else if (*p < 0x20 || *p >= 0x7f) {
            /*
             * Control bytes, and anything outside ASCII: a client may send
             * arbitrary bytes, and the answer must stay valid UTF-8.
             */
            ctl_buf_addf(out, "\\u%04x", *p);
        } else {
            ctl_buf_addc(out, (char)*p);
        }
    }
    ctl_buf_addc(out, '"');
}

static void rpc_error(struct rpc *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void rpc_error(struct rpc *r, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ctl_buf_add(r->out, "{\"ok\":false,\"error\":");
    ctl_json_string(r->out, msg);
    ctl_buf_add(r->out, "}\n");
}

/* A word for an error message: at most RPC_QUOTE_MAX bytes. */
static const char *quote(const char *w, char *buf, size_t len)
{
    snprintf(buf, len, "%.*s%s", RPC_QUOTE_MAX, w,
             strlen(w) > RPC_QUOTE_MAX ? "..." : "");
    return buf;
}

/* ---- arguments ---- */

/* Strict decimal in [min, max]. */
static bool parse_uint(const char *s, unsigned long min, unsigned long max,
                       unsigned long *out)
{
    unsigned long v = 0;

    if (!*s || strlen(s) > 10)
        return false;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

struct target {
    unsigned int first, last;   /* queue range, inclusive */
};

/* [] | "all" | "queue" N: fills @t; false after answering an error. */
static bool parse_target(struct rpc *r, int argc, char **argv,
                         struct target *t)
{
    unsigned int nq = fv_dev_num_queues(r->dev);
    unsigned long q;
    char qb[64];

    if (argc == 0 || (argc == 1 && !strcmp(argv[0], "all"))) {
        t->first = 0;
        t->last = nq - 1;
        return true;
    }
    if (!strcmp(argv[0], "queue")) {
        if (argc < 2) {
            rpc_error(r, "'queue' needs a queue index (0..%u)", nq - 1);
            return false;
        }
        if (!parse_uint(argv[1], 0, nq - 1, &q)) {
            rpc_error(r, "bad queue index '%s' (0..%u)",
                      quote(argv[1], qb, sizeof(qb)), nq - 1);
            return false;
        }
        if (argc > 2) {
            rpc_error(r, "unexpected '%s' after the queue index",
                      quote(argv[2], qb, sizeof(qb)));
            return false;
        }
        t->first = t->last = (unsigned int)q;
        return true;
    }
    rpc_error(r, "unexpected '%s' (expected 'queue N' or 'all')",
              quote(argv[0], qb, sizeof(qb)));
    return false;
}

static bool no_args(struct rpc *r, int argc, char **argv)
{
    char qb[64];

    if (argc == 0)
        return true;
    rpc_error(r, "unexpected '%s'", quote(argv[0], qb, sizeof(qb)));
    return false;
}

/* ---- answers ---- */

static void append_queue(struct rpc *r, unsigned int q)
{
    struct dispatch *d = fv_dev_dispatch(r->dev);
    enum fv_mode mode = FV_MODE_INLINE;
    unsigned int size = 0;

    uint64_t auto_ns, auto_inline, auto_pool;

    dispatch_get_mode(d, q, &mode, &size);
    dispatch_auto_get(d, q, &auto_ns, &auto_inline, &auto_pool);
    ctl_buf_addf(r->out,
                           "{\"queue\":%u,\"started\":%s,\"mode\":\"%s\","
                           "\"pool_size\":%u,\"pool_threads\":%u,"
                           "\"pool_sched\":\"%s\",\"auto\":{"
                           "\"slow_us\":%llu,"
                           "\"inline_us\":%.1f,\"chose_inline\":%llu,"
                           "\"chose_pool\":%llu}}",
                           q, fv_dev_queue_started(r->dev, q) ? "true" : "false",
                           dispatch_mode_name(mode), size,
                           dispatch_pool_threads(size),
                           fv_pool_sched_name(dispatch_get_pool_sched(d, q)),
                           (unsigned long long)(dispatch_get_auto_slow(d, q) /
                                                1000u),
                           (double)auto_ns / 1000.0,
                           (unsigned long long)auto_inline,
                           (unsigned long long)auto_pool);
}

static void append_queues(struct rpc *r, const struct target *t)
{
    ctl_buf_add(r->out, "\"queues\":[");
    for (unsigned int q = t->first; q <= t->last; q++) {
        if (q != t->first)
            ctl_buf_addc(r->out, ',');
        append_queue(r, q);
    }
    ctl_buf_addc(r->out, ']');
}

/* A setting changed on @t's queues: log it, answer with their state. */
static void answer_set(struct rpc *r, const struct target *t)
{
    vfs_info("control: %s", r->line);
    ctl_buf_add(r->out, "{\"ok\":true,");
    append_queues(r, t);
    ctl_buf_add(r->out, "}\n");
}

/* ---- commands ---- */

static const struct rpc_cmd rpc_cmds[];
static const size_t rpc_ncmds;

static void cmd_help(struct rpc *r, int argc, char **argv)
{
    if (!no_args(r, argc, argv))
        return;
    ctl_buf_addf(r->out, "{\"ok\":true,\"protocol\":%d,"
                           "\"commands\":[", CTL_PROTOCOL_VERSION);
    for (size_t i = 0; i < rpc_ncmds; i++) {
        if (i)
            ctl_buf_addc(r->out, ',');
        ctl_buf_add(r->out, "{\"usage\":");
        ctl_json_string(r->out, rpc_cmds[i].usage);
        ctl_buf_add(r->out, ",\"help\":");
        ctl_json_string(r->out, rpc_cmds[i].help);
        ctl_buf_addc(r->out, '}');
    }
    ctl_buf_add(r->out, "]}\n");
}

static void cmd_version(struct rpc *r, int argc, char **argv)
{
    if (!no_args(r, argc, argv))
        return;
    ctl_buf_add(r->out, "{\"ok\":true,\"version\":");
    ctl_json_string(r->out, VFS_VERSION);
    ctl_buf_addf(r->out, ",\"protocol\":%d}\n",
                           CTL_PROTOCOL_VERSION);
}

static void cmd_stats(struct rpc *r, int argc, char **argv)
{
    char *snap;

    if (!no_args(r, argc, argv))
        return;
    snap = fv_dev_stats_json(r->dev);
    if (!snap) {
        rpc_error(r, "stats: out of memory");
        return;
    }
    ctl_buf_add(r->out, "{\"ok\":true,\"stats\":");
    ctl_buf_add(r->out, snap);
    ctl_buf_add(r->out, "}\n");
    free(snap);
}

static void cmd_stats_reset(struct rpc *r, int argc, char **argv)
{
    if (!no_args(r, argc, argv))
        return;
    fv_dev_stats_reset(r->dev);
    vfs_info("control: stats reset");
    ctl_buf_add(r->out, "{\"ok\":true}\n");
}

static void cmd_mode_get(struct rpc *r, int argc, char **argv)
{
    struct target t;

    if (!parse_target(r, argc, argv, &t))
        return;
    ctl_buf_add(r->out, "{\"ok\":true,");
    append_queues(r, &t);
    ctl_buf_add(r->out, "}\n");
}

/*
 * Apply @mode (or keep each queue's, @keep_mode) and @size (0: keep each
 * queue's, or CTL_DEFAULT_POOL_SIZE if it never had one and goes to pool)
 * to the target queues, then answer with their new state.
 */
static void apply(struct rpc *r, const struct target *t, bool keep_mode,
                  enum fv_mode mode, unsigned int size)
{
    struct dispatch *d = fv_dev_dispatch(r->dev);
    unsigned int switched = 0;

    for (unsigned int q = t->first; q <= t->last; q++) {
        enum fv_mode old = FV_MODE_INLINE, m;
        unsigned int old_size = 0, s = size;

        dispatch_get_mode(d, q, &old, &old_size);
        m = keep_mode ? old : mode;
        if (!s)
            s = old_size ? old_size
                         : m != FV_MODE_INLINE ? CTL_DEFAULT_POOL_SIZE : 0;
        if (dispatch_set_mode(d, q, m, s) < 0) {
            /* cannot happen: arguments were checked */
            rpc_error(r, "queue %u: cannot set mode", q);
            return;
        }
        if (m != old) {
            switched++;
            fv_dev_stats_mode_switch(r->dev, q);
        }
    }
    vfs_info("control: %s: %u queue(s) switched", r->line, switched);
    ctl_buf_addf(r->out, "{\"ok\":true,\"switched\":%u,", switched);
    append_queues(r, t);
    ctl_buf_add(r->out, "}\n");
}

static bool parse_size(struct rpc *r, const char *s, unsigned long *size)
{
    char qb[64];

    if (parse_uint(s, 1, DISPATCH_MAX_POOL_SIZE, size))
        return true;
    rpc_error(r, "bad pool size '%s' (1..%u)", quote(s, qb, sizeof(qb)),
              DISPATCH_MAX_POOL_SIZE);
    return false;
}

static void cmd_mode_set(struct rpc *r, int argc, char **argv)
{
    unsigned long size = 0;
    struct target t;
    char qb[64];

    enum fv_mode mode;

    if (argc < 1) {
        rpc_error(r, "mode set: expected 'inline', 'pool' or 'auto'");
        return;
    }
    if (!strcmp(argv[0], "inline")) {
        if (parse_target(r, argc - 1, argv + 1, &t))
            apply(r, &t, false, FV_MODE_INLINE, 0);
        return;
    }
    if (!strcmp(argv[0], "pool")) {
        mode = FV_MODE_POOL;
    } else if (!strcmp(argv[0], "auto")) {
        mode = FV_MODE_AUTO;
    } else {
        rpc_error(r, "mode set: unknown mode '%s' (expected 'inline', "
                  "'pool' or 'auto')", quote(argv[0], qb, sizeof(qb)));
        return;
    }
    argc--;
    argv++;
    /* an optional size comes before the target */
    if (argc > 0 && argv[0][0] >= '0' && argv[0][0] <= '9') {
        if (!parse_size(r, argv[0], &size))
            return;
        argc--;
        argv++;
    }
    if (parse_target(r, argc, argv, &t))
        apply(r, &t, false, mode, (unsigned int)size);
}

static void cmd_pool_size(struct rpc *r, int argc, char **argv)
{
    unsigned long size;
    struct target t;

    if (argc < 1) {
        rpc_error(r, "pool size: expected a size (1..%u)",
                  DISPATCH_MAX_POOL_SIZE);
        return;
    }
    if (!parse_size(r, argv[0], &size))
        return;
    if (parse_target(r, argc - 1, argv + 1, &t))
        apply(r, &t, true, FV_MODE_INLINE, (unsigned int)size);
}

static void cmd_pool_sched(struct rpc *r, int argc, char **argv)
{
    enum fv_pool_sched sched;
    struct target t;
    char qb[64];

    if (argc < 1) {
        rpc_error(r, "pool sched: expected 'batch' or 'normal'");
        return;
    }
    if (fv_pool_sched_parse(argv[0], &sched) < 0) {
        rpc_error(r, "pool sched: unknown policy '%s' (expected 'batch' or "
                  "'normal')", quote(argv[0], qb, sizeof(qb)));
        return;
    }
    if (!parse_target(r, argc - 1, argv + 1, &t))
        return;
    for (unsigned int q = t.first; q <= t.last; q++)
        dispatch_set_pool_sched(fv_dev_dispatch(r->dev), q, sched);
    answer_set(r, &t);
}

static void cmd_auto_slow(struct rpc *r, int argc, char **argv)
{
    unsigned int us;
    struct target t;
    char qb[64];

    if (argc < 1) {
        rpc_error(r, "auto slow: expected microseconds (%u..%u)",
                  FV_AUTO_SLOW_MIN_US, FV_AUTO_SLOW_MAX_US);
        return;
    }
    if (fv_auto_slow_parse(argv[0], &us) < 0) {
        rpc_error(r, "auto slow: invalid '%s' (expected %u..%u "
                  "microseconds)", quote(argv[0], qb, sizeof(qb)),
                  FV_AUTO_SLOW_MIN_US, FV_AUTO_SLOW_MAX_US);
        return;
    }
    if (!parse_target(r, argc - 1, argv + 1, &t))
        return;
    for (unsigned int q = t.first; q <= t.last; q++)
        dispatch_set_auto_slow(fv_dev_dispatch(r->dev), q, us);
    answer_set(r, &t);
}

/* Event names and whether the log backend prints each. */
static void cmd_trace_list(struct rpc *r, int argc, char **argv)
{
    if (!no_args(r, argc, argv))
        return;
    ctl_buf_add(r->out, "{\"ok\":true,\"backends\":");
    ctl_json_string(r->out, trace_backends());
    ctl_buf_add(r->out, ",\"events\":[");
    for (size_t i = 0; i < trace_event_count(); i++) {
        ctl_buf_add(r->out, i ? ",{\"name\":" : "{\"name\":");
        ctl_json_string(r->out, trace_event_get(i)->name);
        ctl_buf_addf(r->out, ",\"log\":%s}",
                     trace_event_log_enabled(i) ? "true" : "false");
    }
    ctl_buf_add(r->out, "]}\n");
}

static void trace_switch(struct rpc *r, int argc, char **argv, bool on)
{
    int n;

    if (argc != 1) {
        rpc_error(r, "usage: trace %s PATTERN", on ? "on" : "off");
        return;
    }
    n = trace_set_enabled(argv[0], on);
    if (n == -ENOENT) {
        rpc_error(r, "trace: no event matches the pattern");
        return;
    }
    if (n < 0) {
        rpc_error(r, "trace: %s", n == -ENOTSUP ?
                  "the log backend is not built in" : strerror(-n));
        return;
    }
    vfs_info("control: trace %s %s (%d events)", on ? "on" : "off", argv[0], n);
    ctl_buf_addf(r->out, "{\"ok\":true,\"matched\":%d}\n", n);
}

static void cmd_trace_on(struct rpc *r, int argc, char **argv)
{
    trace_switch(r, argc, argv, true);
}

static void cmd_trace_off(struct rpc *r, int argc, char **argv)
{
    trace_switch(r, argc, argv, false);
}

/* Two-word entries before the one-word entry with the same first word. */
static const struct rpc_cmd rpc_cmds[] = {
    { "help", NULL, cmd_help, "help", "list the commands" },
    { "version", NULL, cmd_version, "version",
      "daemon version and control protocol version" },
    { "stats", "reset", cmd_stats_reset, "stats reset",
      "restart every counter from zero" },
    { "stats", NULL, cmd_stats, "stats",
      "the whole counter snapshot (STATS.md), as \"stats\":{...}" },
    { "mode", "get", cmd_mode_get, "mode get [queue N|all]",
      "execution mode and pool size per queue (default all)" },
    { "mode", "set", cmd_mode_set,
      "mode set inline|pool|auto [SIZE] [queue N|all]",
      "switch queues live; pool and auto take an optional size (1..1024, "
      "default: the queue's last size, else 4)" },
    { "mode", NULL, cmd_mode_get, "mode", "same as mode get all" },
    { "pool", "size", cmd_pool_size, "pool size SIZE [queue N|all]",
      "resize the pools (1..1024) without changing the mode" },
    { "pool", "sched", cmd_pool_sched, "pool sched batch|normal [queue N|all]",
      "pool threads' scheduling policy from their next wake-up or request (SCHED_BATCH "
      "or SCHED_OTHER), in any mode" },
    { "auto", "slow", cmd_auto_slow, "auto slow US [queue N|all]",
      "auto's threshold: the average inline run time (1..1000000 us, "
      "default 25) from which waiting requests go to the pool, in any mode" },
    { "trace", "list", cmd_trace_list, "trace list",
      "trace events and whether the log backend prints them" },
    { "trace", "on", cmd_trace_on, "trace on PATTERN",
      "print events matching the glob through the daemon's log" },
    { "trace", "off", cmd_trace_off, "trace off PATTERN",
      "stop printing events matching the glob" },
};
static const size_t rpc_ncmds = sizeof(rpc_cmds) / sizeof(rpc_cmds[0]);

void ctl_rpc_execute(struct fv_dev *dev, const char *line,
                     struct ctl_buf *out)
{
    struct rpc r = { .dev = dev, .out = out, .line = line };
    char *argv[RPC_MAX_WORDS + 1];
    char buf[CTL_LINE_MAX];
    char *save = NULL, *w;
    int argc = 0;
    char qb[64];

    /* the framing guarantees the size; a longer line is cut, not overrun */
    snprintf(buf, sizeof(buf), "%s", line);
    for (w = strtok_r(buf, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
        if (argc == RPC_MAX_WORDS) {
            rpc_error(&r, "too many words (max %d)", RPC_MAX_WORDS);
            return;
        }
        argv[argc++] = w;
    }
    if (argc == 0) {
        rpc_error(&r, "empty command (try 'help')");
        return;
    }
    for (size_t i = 0; i < rpc_ncmds; i++) {
        const struct rpc_cmd *c = &rpc_cmds[i];
        int used = c->w2 ? 2 : 1;

        if (strcmp(argv[0], c->w1))
            continue;
        if (c->w2 && (argc < 2 || strcmp(argv[1], c->w2)))
            continue;
        if (!dev && c->fn != cmd_help && c->fn != cmd_version) {
            rpc_error(&r, "no device yet");
            return;
        }
        c->fn(&r, argc - used, argv + used);
        return;
    }
    for (size_t i = 0; i < rpc_ncmds; i++) {
        if (!strcmp(argv[0], rpc_cmds[i].w1)) {
            rpc_error(&r, "usage: %s", rpc_cmds[i].usage);
            return;
        }
    }
    rpc_error(&r, "unknown command '%s' (try 'help')",
              quote(argv[0], qb, sizeof(qb)));
}
