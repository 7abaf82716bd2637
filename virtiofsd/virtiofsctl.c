/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtiofsctl: the human client of the daemon's control socket
 * (CONTROL.md). Sends one command line, reads one JSON line, prints it as
 * a table (or as is with --json / raw). `top` polls `stats` and shows
 * per-interval rates and latencies computed from snapshot differences.
 *
 * Exit status: 0 ok, 1 the daemon answered an error or the socket failed,
 * 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "json_mini.h"
#include "auto_slow.h"
#include "pool_sched.h"

#define ENV_SOCKET "VIRTIOFSCTL_SOCKET"
/* Biggest answer accepted (a stats snapshot is some 10-100 KB). */
#define MAX_ANSWER (256u << 20)
/* Buckets a histogram may have (the schema says how many it has). */
#define MAX_BUCKETS 1024

static const char *prog = "virtiofsctl";
static int timeout_ms = 10000;

static void usage(FILE *f)
{
    fprintf(f,
"usage: %s [-s SOCKET] [-t SECONDS] COMMAND [ARGS]\n"
"\n"
"  -s, --socket PATH     the daemon's --control-socket (default $" ENV_SOCKET ")\n"
"  -t, --timeout SEC     wait at most SEC for an answer (default 10)\n"
"\n"
"commands:\n"
"  stats [--json] [--all]\n"
"        counters per queue and per opcode x mode: count, errors, mean,\n"
"        p50 and p99 of wait / service / total (--all: idle queues too)\n"
"  top [--interval SEC] [--iterations N]\n"
"        per-opcode view refreshed every interval (default 1 s): ops/s,\n"
"        mean and p99 of wait and service per mode, in-flight, requests\n"
"        per kick, all from snapshot differences\n"
"  mode [--all]                        execution mode per started queue\n"
"  mode [--queue N] inline             run requests on the queue thread\n"
"  mode [--queue N] pool [--threads N] run them on the queue's pool\n"
"  mode [--queue N] auto [--threads N] inline, or the pool when requests\n"
"                                      wait and inline runs are slow\n"
"  mode [--queue N] --threads N        resize the pool, keep the mode\n"
"  mode [--queue N] --sched batch|normal\n"
"        pool threads' scheduling policy (SCHED_BATCH / SCHED_OTHER)\n"
"  mode [--queue N] --auto-slow US\n"
"        auto's threshold: inline runs averaging US microseconds or more\n"
"        send waiting requests to the pool (1..1000000, default 25)\n"
"        (default: every queue; N is the virtqueue index, 0 = hiprio)\n"
"  reset                               restart the counters from zero\n"
"  raw 'LINE'                          send LINE, print the JSON answer\n",
            prog);
}

/* ---- the socket ---- */

static int ctl_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "%s: socket path too long: %s\n", prog, path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "%s: socket: %s\n", prog, strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr, "%s: connect %s: %s\n", prog, path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* One answer line (malloc'd, NUL-terminated, newline stripped) or NULL. */
static char *read_line(int fd)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);

    if (!buf)
        return NULL;
    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        char *nl;
        ssize_t n;
        int r;

        if (len + 1 >= cap) {
            char *nb;

            if (cap >= MAX_ANSWER) {
                fprintf(stderr, "%s: answer longer than %u bytes\n", prog,
                        MAX_ANSWER);
                break;
            }
            nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
        r = poll(&pfd, 1, timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fprintf(stderr, "%s: %s\n", prog,
                    r == 0 ? "no answer (timeout)" : strerror(errno));
            break;
        }
        n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "%s: %s\n", prog,
                    n == 0 ? "the daemon closed the connection"
                           : strerror(errno));
            break;
        }
        nl = memchr(buf + len, '\n', (size_t)n);
        len += (size_t)n;
        if (nl) {
            *nl = '\0';
            return buf;
        }
    }
    free(buf);
    return NULL;
}

/*
 * Send @line, parse the answer. NULL after printing why; with @ok_only,
 * also when the daemon answered {"ok":false,...}.
 */
static struct jm *request(int fd, const char *line, char **raw, bool ok_only)
{
    char err[160];
    char *ans;
    struct jm *v;
    size_t n = strlen(line);
    char *msg = malloc(n + 2);
    int r;

    if (!msg)
        return NULL;
    memcpy(msg, line, n);
    msg[n] = '\n';
    msg[n + 1] = '\0';
    r = send_all(fd, msg, n + 1);
    free(msg);
    if (r < 0) {
        fprintf(stderr, "%s: send: %s\n", prog, strerror(-r));
        return NULL;
    }
    ans = read_line(fd);
    if (!ans)
        return NULL;
    v = jm_parse(ans, strlen(ans), err, sizeof(err));
    if (!v) {
        fprintf(stderr, "%s: bad answer (%s): %.200s\n", prog, err, ans);
        free(ans);
        return NULL;
    }
    if (ok_only && !jm_bool(jm_get(v, "ok"), false)) {
        fprintf(stderr, "%s: %s\n", prog,
                jm_str(jm_get(v, "error"), "the daemon refused the command"));
        jm_free(v);
        free(ans);
        return NULL;
    }
    if (raw)
        *raw = ans;
    else
        free(ans);
    return v;
}

/* ---- formatting ---- */

/* "850ns", "12.3us", "4.56ms", "1.20s" into @buf. */
static const char *fmt_ns(double ns, char *buf, size_t len)
{
    if (ns < 0 || isnan(ns))
        snprintf(buf, len, "-");
    else if (ns < 1000)
        snprintf(buf, len, "%.0fns", ns);
    else if (ns < 1e6)
        snprintf(buf, len, "%.*fus", ns < 1e4 ? 2 : ns < 1e5 ? 1 : 0, ns / 1e3);
    else if (ns < 1e9)
        snprintf(buf, len, "%.*fms", ns < 1e7 ? 2 : ns < 1e8 ? 1 : 0, ns / 1e6);
    else
        snprintf(buf, len, "%.2fs", ns / 1e9);
    return buf;
}

static const char *fmt_count(double v, char *buf, size_t len)
{
    if (v < 1e4)
        snprintf(buf, len, "%.0f", v);
    else if (v < 1e7)
        snprintf(buf, len, "%.1fk", v / 1e3);
    else if (v < 1e10)
        snprintf(buf, len, "%.1fM", v / 1e6);
    else
        snprintf(buf, len, "%.1fG", v / 1e9);
    return buf;
}

/* ---- histograms from the schema (STATS.md) ---- */

struct hist {
    uint64_t count;
    uint64_t sum;
    uint64_t b[MAX_BUCKETS];
};

struct borders {
    size_t n;
    uint64_t v[MAX_BUCKETS];
};

static void borders_load(struct borders *br, const struct jm *stats)
{
    const struct jm *b = jm_path(stats, "histogram.borders");

    br->n = jm_count(b);
    if (br->n > MAX_BUCKETS)
        br->n = MAX_BUCKETS;
    for (size_t i = 0; i < br->n; i++)
        br->v[i] = jm_u64(jm_at(b, i), 0);
}

/* @sign +1 adds histogram object @h into @acc, -1 subtracts it. */
static void hist_add(struct hist *acc, const struct jm *h, int sign)
{
    const struct jm *bk = jm_get(h, "buckets");
    uint64_t sum = jm_u64(jm_get(h, "sum_ns"), jm_u64(jm_get(h, "sum"), 0));

    if (!h)
        return;
    acc->count += (uint64_t)sign * jm_u64(jm_get(h, "count"), 0);
    acc->sum += (uint64_t)sign * sum;
    for (size_t i = 0; i < jm_count(bk); i++) {
        const struct jm *pair = jm_at(bk, i);
        uint64_t idx = jm_u64(jm_at(pair, 0), UINT64_MAX);

        if (idx < MAX_BUCKETS)
            acc->b[idx] += (uint64_t)sign * jm_u64(jm_at(pair, 1), 0);
    }
}

/*
 * Percentile q of @h: the upper end of the bucket holding the sample of
 * rank ceil(q * count) (the daemon's own rule, STATS.md). -1 if empty.
 */
static double hist_pct(const struct hist *h, const struct borders *br,
                       double q)
{
    uint64_t rank, seen = 0;

    if (!h->count || (int64_t)h->count < 0)
        return -1;
    rank = (uint64_t)ceil(q * (double)h->count);
    if (rank < 1)
        rank = 1;
    for (size_t i = 0; i < br->n; i++) {
        seen += h->b[i];
        if (seen >= rank)
            return i + 1 < br->n ? (double)(br->v[i + 1] - 1)
                                 : (double)br->v[i];
    }
    return -1;
}

static double hist_mean(const struct hist *h)
{
    return h->count && (int64_t)h->count > 0 ?
           (double)h->sum / (double)h->count : -1;
}

/* ---- stats ---- */

static const struct jm *find_queue_state(const struct jm *modes, uint64_t q)
{
    for (size_t i = 0; i < jm_count(jm_get(modes, "queues")); i++) {
        const struct jm *e = jm_at(jm_get(modes, "queues"), i);

        if (jm_u64(jm_get(e, "queue"), UINT64_MAX) == q)
            return e;
    }
    return NULL;
}

static void print_stats(const struct jm *st, const struct jm *modes, bool all)
{
    static struct borders br;
    static struct hist h;
    const struct jm *queues = jm_get(st, "queues");
    char a[32], b[32], c[32];
    bool any = false;

    borders_load(&br, st);
    printf("schema %s v%llu, %s, %.1f s since reset\n",
           jm_str(jm_get(st, "schema"), "?"),
           (unsigned long long)jm_u64(jm_get(st, "version"), 0),
           jm_bool(jm_get(st, "stats_enabled"), true) ? "stats on"
                                                       : "stats OFF",
           jm_num(jm_get(st, "since_reset_ns"), 0) / 1e9);
    for (size_t qi = 0; qi < jm_count(queues); qi++) {
        const struct jm *q = jm_at(queues, qi);
        const struct jm *ops = jm_get(q, "ops");
        const struct jm *rpk = jm_get(q, "reqs_per_kick");
        uint64_t idx = jm_u64(jm_get(q, "index"), qi);
        const struct jm *ms = find_queue_state(modes, idx);
        bool started = jm_bool(jm_get(ms, "started"), true);

        if (!all && !jm_u64(jm_get(q, "requests"), 0) &&
            !jm_u64(jm_get(q, "kicks"), 0) && !started)
            continue;
        any = true;
        printf("\nqueue %llu (%s%s): mode %s, pool %llu, requests %llu, "
               "kicks %llu, req/kick mean %.1f p99 %llu, in-flight %llu "
               "(max %llu), notify %llu (suppressed %llu), switches %llu\n",
               (unsigned long long)idx, jm_str(jm_get(q, "role"), "?"),
               started ? "" : ", stopped",
               jm_str(jm_get(q, "mode"), "?"),
               (unsigned long long)jm_u64(jm_get(q, "pool_size"), 0),
               (unsigned long long)jm_u64(jm_get(q, "requests"), 0),
               (unsigned long long)jm_u64(jm_get(q, "kicks"), 0),
               jm_u64(jm_get(rpk, "count"), 0) ?
                   (double)jm_u64(jm_get(rpk, "sum"), 0) /
                   (double)jm_u64(jm_get(rpk, "count"), 1) : 0.0,
               (unsigned long long)jm_u64(jm_get(rpk, "p99"), 0),
               (unsigned long long)jm_u64(jm_get(q, "inflight"), 0),
               (unsigned long long)jm_u64(jm_get(q, "inflight_max"), 0),
               (unsigned long long)jm_u64(jm_get(q, "notify_sent"), 0),
               (unsigned long long)jm_u64(jm_get(q, "notify_suppressed"), 0),
               (unsigned long long)jm_u64(jm_get(q, "mode_switches"), 0));
        if (!jm_count(ops))
            continue;
        printf("  %-14s %-6s %9s %6s | %-24s | %-24s | %-24s\n", "OPCODE",
               "MODE", "COUNT", "ERRORS", "wait  mean/p50/p99",
               "service  mean/p50/p99", "total  mean/p50/p99");
        for (size_t oi = 0; oi < jm_count(ops); oi++) {
            static const char *const phases[] = { "wait", "service", "total" };
            const struct jm *op = jm_at(ops, oi);

            printf("  %-14s %-6s %9llu %6llu", jm_str(jm_get(op, "opcode"), "?"),
                   jm_str(jm_get(op, "mode"), "?"),
                   (unsigned long long)jm_u64(jm_get(op, "count"), 0),
                   (unsigned long long)jm_u64(jm_get(op, "errors"), 0));
            for (size_t p = 0; p < 3; p++) {
                char cell[40];

                memset(&h, 0, sizeof(h));
                hist_add(&h, jm_get(op, phases[p]), 1);
                snprintf(cell, sizeof(cell), "%s/%s/%s",
                         fmt_ns(hist_mean(&h), a, sizeof(a)),
                         fmt_ns(hist_pct(&h, &br, 0.5), b, sizeof(b)),
                         fmt_ns(hist_pct(&h, &br, 0.99), c, sizeof(c)));
                printf(" | %-24s", cell);
            }
            printf("\n");
        }
    }
    if (!any)
        printf("\nno queue has served requests yet (--all lists every queue)\n");
}

static int cmd_stats(int fd, int argc, char **argv)
{
    static const struct option lo[] = {
        { "json", no_argument, NULL, 'j' },
        { "all", no_argument, NULL, 'a' },
        { NULL, 0, NULL, 0 },
    };
    bool json = false, all = false;
    struct jm *v, *modes;
    char *raw = NULL;
    int c;

    optind = 0;
    while ((c = getopt_long(argc, argv, "ja", lo, NULL)) != -1) {
        if (c == 'j')
            json = true;
        else if (c == 'a')
            all = true;
        else
            return 2;
    }
    if (optind != argc)
        return 2;
    v = request(fd, "stats", json ? &raw : NULL, true);
    if (!v)
        return 1;
    if (json) {
        printf("%s\n", raw);
        free(raw);
        jm_free(v);
        return 0;
    }
    /* which queues are started is the device's state, not a counter */
    modes = request(fd, "mode get", NULL, true);
    print_stats(jm_get(v, "stats"), modes, all);
    jm_free(modes);
    jm_free(v);
    return 0;
}

/* ---- top ---- */

struct agg {
    char opcode[32];
    char mode[16];
    uint64_t count, errors;
    struct hist wait, service;
};

static struct agg *agg_find(struct agg **tab, size_t *n, size_t *cap,
                            const char *opcode, const char *mode)
{
    for (size_t i = 0; i < *n; i++) {
        if (!strcmp((*tab)[i].opcode, opcode) && !strcmp((*tab)[i].mode, mode))
            return &(*tab)[i];
    }
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        struct agg *nt = realloc(*tab, ncap * sizeof(**tab));

        if (!nt)
            return NULL;
        *tab = nt;
        *cap = ncap;
    }
    memset(&(*tab)[*n], 0, sizeof(**tab));
    snprintf((*tab)[*n].opcode, sizeof((*tab)[*n].opcode), "%s", opcode);
    snprintf((*tab)[*n].mode, sizeof((*tab)[*n].mode), "%s", mode);
    return &(*tab)[(*n)++];
}

/* The op of @prev_q matching @op (same opcode number, name and mode). */
static const struct jm *find_op(const struct jm *prev_q, const struct jm *op)
{
    const struct jm *ops = jm_get(prev_q, "ops");

    for (size_t i = 0; i < jm_count(ops); i++) {
        const struct jm *p = jm_at(ops, i);

        if (jm_num(jm_get(p, "opcode_num"), -2) ==
                jm_num(jm_get(op, "opcode_num"), -3) &&
            !strcmp(jm_str(jm_get(p, "opcode"), ""),
                    jm_str(jm_get(op, "opcode"), "")) &&
            !strcmp(jm_str(jm_get(p, "mode"), ""),
                    jm_str(jm_get(op, "mode"), "")))
            return p;
    }
    return NULL;
}

static const struct jm *find_queue(const struct jm *st, uint64_t idx)
{
    const struct jm *qs = jm_get(st, "queues");

    for (size_t i = 0; i < jm_count(qs); i++) {
        if (jm_u64(jm_get(jm_at(qs, i), "index"), UINT64_MAX) == idx)
            return jm_at(qs, i);
    }
    return NULL;
}

static int agg_cmp(const void *a, const void *b)
{
    const struct agg *x = a, *y = b;

    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    if (strcmp(x->opcode, y->opcode))
        return strcmp(x->opcode, y->opcode);
    return strcmp(x->mode, y->mode);
}

/* One screen: @cur minus @prev (NULL: since the reset). */
static void top_screen(const struct jm *cur, const struct jm *prev, bool tty)
{
    static struct borders br;
    const struct jm *queues = jm_get(cur, "queues");
    double dt = (jm_num(jm_get(cur, "time_ns"), 0) -
                 jm_num(jm_get(prev, "time_ns"), 0)) / 1e9;
    struct agg *tab = NULL;
    size_t n = 0, cap = 0;
    char a[32], b[32], c[32], d[32], e[32];

    if (!prev)
        dt = jm_num(jm_get(cur, "since_reset_ns"), 0) / 1e9;
    /* a reset between the two snapshots: show the new interval alone */
    if (prev && jm_num(jm_get(cur, "since_reset_ns"), 0) <
                jm_num(jm_get(prev, "since_reset_ns"), 0)) {
        prev = NULL;
        dt = jm_num(jm_get(cur, "since_reset_ns"), 0) / 1e9;
    }
    if (dt <= 0)
        dt = 1e-9;
    borders_load(&br, cur);
    if (tty)
        printf("\033[H\033[2J");
    printf("virtiofsd top: interval %.2f s%s\n", dt,
           jm_bool(jm_get(cur, "stats_enabled"), true) ? ""
               : "  (daemon runs with --stats=off: no counters)");
    printf("%-6s %-8s %-7s %5s %10s %8s %9s %9s\n", "QUEUE", "ROLE", "MODE",
           "POOL", "OPS/S", "INFLIGHT", "REQ/KICK", "SWITCHES");
    for (size_t qi = 0; qi < jm_count(queues); qi++) {
        const struct jm *q = jm_at(queues, qi);
        uint64_t idx = jm_u64(jm_get(q, "index"), qi);
        const struct jm *pq = prev ? find_queue(prev, idx) : NULL;
        double dreq = jm_num(jm_get(q, "requests"), 0) -
                      jm_num(jm_get(pq, "requests"), 0);
        double dk = jm_num(jm_get(jm_get(q, "reqs_per_kick"), "count"), 0) -
                    jm_num(jm_get(jm_get(pq, "reqs_per_kick"), "count"), 0);
        double ds = jm_num(jm_get(jm_get(q, "reqs_per_kick"), "sum"), 0) -
                    jm_num(jm_get(jm_get(pq, "reqs_per_kick"), "sum"), 0);
        double dsw = jm_num(jm_get(q, "mode_switches"), 0) -
                     jm_num(jm_get(pq, "mode_switches"), 0);
        const struct jm *ops = jm_get(q, "ops");

        if (jm_u64(jm_get(q, "requests"), 0) || jm_u64(jm_get(q, "inflight"), 0))
            printf("%-6llu %-8s %-7s %5llu %10.0f %8llu %9s %9.0f\n",
                   (unsigned long long)idx, jm_str(jm_get(q, "role"), "?"),
                   jm_str(jm_get(q, "mode"), "?"),
                   (unsigned long long)jm_u64(jm_get(q, "pool_size"), 0),
                   dreq / dt, (unsigned long long)jm_u64(jm_get(q, "inflight"), 0),
                   dk > 0 ? (snprintf(e, sizeof(e), "%.1f", ds / dk), e) : "-",
                   dsw);
        for (size_t oi = 0; oi < jm_count(ops); oi++) {
            const struct jm *op = jm_at(ops, oi);
            const struct jm *pop = pq ? find_op(pq, op) : NULL;
            struct agg *ag = agg_find(&tab, &n, &cap,
                                      jm_str(jm_get(op, "opcode"), "?"),
                                      jm_str(jm_get(op, "mode"), "?"));

            if (!ag)
                continue;
            ag->count += jm_u64(jm_get(op, "count"), 0) -
                         jm_u64(jm_get(pop, "count"), 0);
            ag->errors += jm_u64(jm_get(op, "errors"), 0) -
                          jm_u64(jm_get(pop, "errors"), 0);
            hist_add(&ag->wait, jm_get(op, "wait"), 1);
            hist_add(&ag->service, jm_get(op, "service"), 1);
            if (pop) {
                hist_add(&ag->wait, jm_get(pop, "wait"), -1);
                hist_add(&ag->service, jm_get(pop, "service"), -1);
            }
        }
    }
    if (n)
        qsort(tab, n, sizeof(*tab), agg_cmp);
    printf("\n%-14s %-6s %10s %7s | %-19s | %-19s\n", "OPCODE", "MODE", "OPS/S",
           "ERR/S", "wait  mean / p99", "service  mean / p99");
    for (size_t i = 0; i < n; i++) {
        if (!tab[i].count)
            continue;
        printf("%-14s %-6s %10s %7.0f | %8s / %-8s | %8s / %-8s\n",
               tab[i].opcode, tab[i].mode,
               fmt_count((double)tab[i].count / dt, e, sizeof(e)),
               (double)tab[i].errors / dt,
               fmt_ns(hist_mean(&tab[i].wait), a, sizeof(a)),
               fmt_ns(hist_pct(&tab[i].wait, &br, 0.99), b, sizeof(b)),
               fmt_ns(hist_mean(&tab[i].service), c, sizeof(c)),
               fmt_ns(hist_pct(&tab[i].service, &br, 0.99), d, sizeof(d)));
    }
    free(tab);
    fflush(stdout);
}

static volatile sig_atomic_t top_stop;

static void on_sigint(int sig)
{
    (void)sig;
    top_stop = 1;
}

static int cmd_top(int fd, int argc, char **argv)
{
    static const struct option lo[] = {
        { "interval", required_argument, NULL, 'i' },
        { "iterations", required_argument, NULL, 'n' },
        { NULL, 0, NULL, 0 },
    };
    double interval = 1.0;
    long iterations = -1;
    struct jm *prev = NULL;
    bool tty = isatty(STDOUT_FILENO);
    struct sigaction sa;
    char *end;
    int c, rc = 0;

    optind = 0;
    while ((c = getopt_long(argc, argv, "i:n:", lo, NULL)) != -1) {
        if (c == 'i') {
            interval = strtod(optarg, &end);
            if (*end || !(interval >= 0.05 && interval <= 3600))
                return 2;
        } else if (c == 'n') {
            iterations = strtol(optarg, &end, 10);
            if (*end || iterations < 1)
                return 2;
        } else {
            return 2;
        }
    }
    if (optind != argc)
        return 2;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* the first screen needs a baseline one interval earlier */
    prev = request(fd, "stats", NULL, true);
    if (!prev)
        return 1;
    for (long it = 0; !top_stop && (iterations < 0 || it < iterations); it++) {
        struct timespec ts = {
            .tv_sec = (time_t)interval,
            .tv_nsec = (long)((interval - (double)(time_t)interval) * 1e9),
        };
        struct jm *cur;

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !top_stop)
            ;
        if (top_stop)
            break;
        cur = request(fd, "stats", NULL, true);
        if (!cur) {
            rc = 1;
            break;
        }
        top_screen(jm_get(cur, "stats"), jm_get(prev, "stats"), tty);
        if (!tty && (iterations < 0 || it + 1 < iterations))
            printf("\n");
        jm_free(prev);
        prev = cur;
    }
    jm_free(prev);
    return rc;
}

/* ---- mode ---- */

static void print_modes(const struct jm *v, bool all)
{
    const struct jm *qs = jm_get(v, "queues");
    size_t shown = 0;

    printf("%-6s %-8s %-7s %9s %8s %-6s  %s\n", "QUEUE", "STARTED", "MODE",
           "POOL_SIZE", "THREADS", "SCHED",
           "AUTO: SLOW_US  INLINE_US  CHOSE_INLINE  CHOSE_POOL");
    for (size_t i = 0; i < jm_count(qs); i++) {
        const struct jm *q = jm_at(qs, i);
        const struct jm *a = jm_get(q, "auto");

        if (!all && !jm_bool(jm_get(q, "started"), true))
            continue;
        shown++;
        printf("%-6llu %-8s %-7s %9llu %8llu %-6s  %13llu %10.1f %13llu "
               "%11llu\n",
               (unsigned long long)jm_u64(jm_get(q, "queue"), 0),
               jm_bool(jm_get(q, "started"), false) ? "yes" : "no",
               jm_str(jm_get(q, "mode"), "?"),
               (unsigned long long)jm_u64(jm_get(q, "pool_size"), 0),
               (unsigned long long)jm_u64(jm_get(q, "pool_threads"), 0),
               jm_str(jm_get(q, "pool_sched"), "?"),
               (unsigned long long)jm_u64(jm_get(a, "slow_us"), 0),
               jm_num(jm_get(a, "inline_us"), 0),
               (unsigned long long)jm_u64(jm_get(a, "chose_inline"), 0),
               (unsigned long long)jm_u64(jm_get(a, "chose_pool"), 0));
    }
    if (!shown)
        printf("(no queue started; --all lists every queue)\n");
}

static bool parse_num(const char *s, unsigned long max, unsigned long *out)
{
    char *end;

    if (!s || s[0] < '0' || s[0] > '9')
        return false;
    errno = 0;
    *out = strtoul(s, &end, 10);
    return !*end && !errno && *out <= max;
}

static int cmd_mode(int fd, int argc, char **argv)
{
    static const struct option lo[] = {
        { "queue", required_argument, NULL, 'q' },
        { "threads", required_argument, NULL, 'T' },
        { "sched", required_argument, NULL, 'S' },
        { "auto-slow", required_argument, NULL, 'U' },
        { "all", no_argument, NULL, 'a' },
        { NULL, 0, NULL, 0 },
    };
    unsigned long queue = 0, threads = 0;
    bool have_queue = false, have_threads = false, all = false;
    char line[128], target[32] = "all", size[24] = "";
    const char *sched = NULL;
    unsigned int slow_us = 0;
    struct jm *v;
    int c;

    optind = 0;
    while ((c = getopt_long(argc, argv, "q:T:S:U:a", lo, NULL)) != -1) {
        switch (c) {
        case 'q':
            if (!parse_num(optarg, 65535, &queue)) {
                fprintf(stderr, "%s: --queue: bad index '%s'\n", prog, optarg);
                return 2;
            }
            have_queue = true;
            break;
        case 'T':
            if (!parse_num(optarg, 1000000, &threads) || !threads) {
                fprintf(stderr, "%s: --threads: bad count '%s'\n", prog,
                        optarg);
                return 2;
            }
            have_threads = true;
            break;
        case 'S': {
            enum fv_pool_sched ps;

            if (fv_pool_sched_parse(optarg, &ps) < 0) {
                fprintf(stderr, "%s: --sched: 'batch' or 'normal', not "
                        "'%s'\n", prog, optarg);
                return 2;
            }
            sched = fv_pool_sched_name(ps);
            break;
        }
        case 'U':
            if (fv_auto_slow_parse(optarg, &slow_us) < 0) {
                fprintf(stderr, "%s: --auto-slow: %u..%u microseconds, not "
                        "'%s'\n", prog, FV_AUTO_SLOW_MIN_US,
                        FV_AUTO_SLOW_MAX_US, optarg);
                return 2;
            }
            break;
        case 'a':
            all = true;
            break;
        default:
            return 2;
        }
    }
    if ((sched || slow_us) && (have_threads || optind != argc ||
                               (sched && slow_us))) {
        fprintf(stderr, "%s: --sched and --auto-slow go alone (with "
                "--queue)\n", prog);
        return 2;
    }
    if (have_queue)
        snprintf(target, sizeof(target), "queue %lu", queue);
    if (have_threads)
        snprintf(size, sizeof(size), "%lu ", threads);
    if (sched) {
        snprintf(line, sizeof(line), "pool sched %s %s", sched, target);
    } else if (slow_us) {
        snprintf(line, sizeof(line), "auto slow %u %s", slow_us, target);
    } else if (optind == argc) {
        if (have_threads)
            snprintf(line, sizeof(line), "pool size %s%s", size, target);
        else
            snprintf(line, sizeof(line), "mode get %s", target);
    } else if (optind + 1 == argc && !strcmp(argv[optind], "inline")) {
        if (have_threads) {
            fprintf(stderr, "%s: --threads goes with 'pool'\n", prog);
            return 2;
        }
        snprintf(line, sizeof(line), "mode set inline %s", target);
    } else if (optind + 1 == argc && (!strcmp(argv[optind], "pool") ||
                                      !strcmp(argv[optind], "auto"))) {
        snprintf(line, sizeof(line), "mode set %s %s%s", argv[optind], size,
                 target);
    } else {
        return 2;
    }
    v = request(fd, line, NULL, true);
    if (!v)
        return 1;
    if (jm_get(v, "switched"))
        printf("%llu queue(s) switched\n",
               (unsigned long long)jm_u64(jm_get(v, "switched"), 0));
    /* after a change, show every queue it touched */
    print_modes(v, all || jm_get(v, "switched") || have_queue);
    jm_free(v);
    return 0;
}

static int cmd_reset(int fd, int argc, char **argv)
{
    struct jm *v;

    if (argc != 1)
        return 2;
    v = request(fd, "stats reset", NULL, true);
    if (!v)
        return 1;
    jm_free(v);
    printf("counters reset\n");
    return 0;
}

static int cmd_raw(int fd, int argc, char **argv)
{
    char *raw = NULL;
    struct jm *v;
    bool ok;

    if (argc != 2)
        return 2;
    if (strchr(argv[1], '\n')) {
        fprintf(stderr, "%s: raw: one line only\n", prog);
        return 2;
    }
    v = request(fd, argv[1], &raw, false);
    if (!v)
        return 1;
    printf("%s\n", raw);
    ok = jm_bool(jm_get(v, "ok"), false);
    free(raw);
    jm_free(v);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int fd, int argc, char **argv);
    } cmds[] = {
        { "stats", cmd_stats },
        { "top", cmd_top },
        { "mode", cmd_mode },
        { "reset", cmd_reset },
        { "raw", cmd_raw },
    };
    static const struct option lo[] = {
        { "socket", required_argument, NULL, 's' },
        { "timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *sock = getenv(ENV_SOCKET);
    char *end;
    double t;
    int c, fd, rc;

    /* options before the command only: the command has its own */
    while ((c = getopt_long(argc, argv, "+s:t:hV", lo, NULL)) != -1) {
        switch (c) {
        case 's':
            sock = optarg;
            break;
        case 't':
            t = strtod(optarg, &end);
            if (*end || !(t > 0 && t <= 86400)) {
                fprintf(stderr, "%s: bad --timeout '%s'\n", prog, optarg);
                return 2;
            }
            timeout_ms = (int)(t * 1000);
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("virtiofsctl (virtiofsd-instrumented) %s\n", VFS_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(argv[optind], cmds[i].name))
            continue;
        if (!sock || !*sock) {
            fprintf(stderr, "%s: no socket: give -s PATH or set $%s\n", prog,
                    ENV_SOCKET);
            return 2;
        }
        fd = ctl_connect(sock);
        if (fd < 0)
            return 1;
        rc = cmds[i].fn(fd, argc - optind, argv + optind);
        close(fd);
        if (rc == 2)
            fprintf(stderr, "%s: bad arguments for '%s' (see %s --help)\n",
                    prog, cmds[i].name, prog);
        return rc;
    }
    fprintf(stderr, "%s: unknown command '%s'\n", prog, argv[optind]);
    usage(stderr);
    return 2;
}
