/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vfs-ab: A/B two daemon command lines under the same vfs-load workload.
 * Runs are interleaved ABBA ABBA... (pair i is AB for even i, BA for odd i),
 * each on a freshly started daemon; the report gives every run and, per
 * metric, the mean of per-pair ratios B/A with a 95 % confidence interval
 * (Student t over pairs).
 *
 *   vfs-ab [load options] [--runs=N] [--json] -A "CMD A" -B "CMD B"
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

struct run {
    char which;
    unsigned pair;
    struct lg_result r;
    struct lg_params p;
};

static double t975(unsigned df)
{
    static const double t[] = { 0, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365,
                                2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
                                2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069,
                                2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042 };
    return df < sizeof(t) / sizeof(t[0]) ? t[df] : 1.96;
}

struct ratio {
    double mean, lo, hi, sd;
    unsigned n;
};

static struct ratio ratio_stats(const double *x, unsigned n)
{
    struct ratio s = { .n = n };
    if (!n) {
        return s;
    }
    for (unsigned i = 0; i < n; i++) {
        s.mean += x[i];
    }
    s.mean /= n;
    if (n > 1) {
        double v = 0;
        for (unsigned i = 0; i < n; i++) {
            v += (x[i] - s.mean) * (x[i] - s.mean);
        }
        s.sd = sqrt(v / (n - 1));
        double half = t975(n - 1) * s.sd / sqrt((double)n);
        s.lo = s.mean - half;
        s.hi = s.mean + half;
    } else {
        s.lo = s.hi = s.mean;
    }
    return s;
}

static double metric(const struct lg_result *r, int m)
{
    switch (m) {
    case 0:
        return r->seconds > 0 ? (double)r->requests / r->seconds : 0;
    case 1:
        return (double)histo_quantile(&r->all, 0.5) / 1000.0;
    case 2:
        return (double)histo_quantile(&r->all, 0.99) / 1000.0;
    default:
        return histo_mean(&r->all) / 1000.0;
    }
}

static const char *const metric_names[] = { "req/s", "p50(us)", "p99(us)", "mean(us)" };
#define NMETRICS 4

static void usage(FILE *f)
{
    fprintf(f, "usage: vfs-ab [load options] [--runs=N] [--json] -A \"CMD\" -B \"CMD\"\n"
               "CMD is a daemon command line without socket argument, optionally\n"
               "prefixed by NAME=VALUE environment words.  Runs go ABBA..., N pairs\n"
               "(default 3).  Load options (same as vfs-load):\n");
    lg_usage_options(f);
}

int main(int argc, char **argv)
{
    struct lg_params base;
    const char *cmd[2] = { NULL, NULL };
    unsigned pairs = 3;
    bool json = false;
    lg_params_default(&base);
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-A") || !strcmp(argv[i], "-B")) && i + 1 < argc) {
            cmd[argv[i][1] - 'A'] = argv[i + 1];
            i++;
            continue;
        }
        if (!strncmp(argv[i], "--runs=", 7)) {
            pairs = (unsigned)atoi(argv[i] + 7);
            continue;
        }
        if (!strcmp(argv[i], "--json")) {
            json = true;
            continue;
        }
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        int n = lg_parse_arg(&base, argc, argv, i);
        if (n <= 0) {
            fprintf(stderr, "vfs-ab: bad option %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
        i += n - 1;
    }
    if (!cmd[0] || !cmd[1] || !pairs) {
        usage(stderr);
        return 2;
    }

    struct run *runs = calloc(2 * pairs, sizeof(*runs));
    bool note[2] = { false, false };
    unsigned nr = 0;
    for (unsigned pr = 0; pr < pairs; pr++) {
        for (unsigned k = 0; k < 2; k++) {
            unsigned w = (pr % 2 == 0) ? k : 1 - k;   /* AB, BA, AB, ... */
            struct run *R = &runs[nr];
            R->p = base;
            R->which = (char)('A' + w);
            R->pair = pr;
            if (lg_set_daemon_cmdline(&R->p, cmd[w]) < 0) {
                fprintf(stderr, "vfs-ab: bad command line %s\n", cmd[w]);
                free(runs);
                return 2;
            }
            note[w] = lg_fix_upstream_env(&R->p);
            if (!json) {
                fprintf(stderr, "vfs-ab: pair %u run %c ...\n", pr + 1, R->which);
            }
            int ret = lg_run(&R->p, &R->r);
            lg_params_release(&R->p);   /* the result keeps the command line */
            R->r.arena_note = note[w];
            if (ret < 0 || R->r.protocol_errors) {
                fprintf(stderr, "vfs-ab: run %c of pair %u failed (%s)\n", R->which, pr + 1,
                        ret < 0 ? strerror(-ret) : "protocol errors");
                free(runs);
                return 1;
            }
            nr++;
        }
    }

    /* Per-pair ratios B/A for each metric. */
    double *x = calloc(pairs, sizeof(double));
    struct ratio rs[NMETRICS];
    double mA[NMETRICS] = { 0 }, mB[NMETRICS] = { 0 };
    for (int m = 0; m < NMETRICS; m++) {
        for (unsigned pr = 0; pr < pairs; pr++) {
            const struct run *a = NULL, *b = NULL;
            for (unsigned i = 0; i < nr; i++) {
                if (runs[i].pair == pr) {
                    if (runs[i].which == 'A') {
                        a = &runs[i];
                    } else {
                        b = &runs[i];
                    }
                }
            }
            double va = metric(&a->r, m), vb = metric(&b->r, m);
            x[pr] = va > 0 ? vb / va : 0;
            mA[m] += va / pairs;
            mB[m] += vb / pairs;
        }
        rs[m] = ratio_stats(x, pairs);
    }
    const struct lg_params *p0 = &runs[0].p;

    if (json) {
        printf("{\"workload\": \"%s\", \"bs\": %u, \"queues\": %u, \"depth\": %u, "
               "\"threads\": %u, \"seconds_per_run\": %.3f, \"pairs\": %u, "
               "\"cpus_driver_mask\": %llu, \"cpus_daemon_mask\": %llu, \"spin\": %s, "
               "\"order\": \"",
               lg_workload_name(p0), p0->bs, p0->queues, p0->depth, p0->threads,
               runs[0].r.seconds, pairs, (unsigned long long)p0->cpus_driver,
               (unsigned long long)p0->cpus_daemon, p0->spin ? "true" : "false");
        for (unsigned i = 0; i < nr; i++) {
            putchar(runs[i].which);
        }
        printf("\", \"A\": {\"cmdline\": ");
        lg_json_str(stdout, runs[0].which == 'A' ? runs[0].r.cmdline : runs[1].r.cmdline);
        printf(", \"malloc_arena_max_added\": %s}, \"B\": {\"cmdline\": ",
               note[0] ? "true" : "false");
        lg_json_str(stdout, runs[0].which == 'B' ? runs[0].r.cmdline : runs[1].r.cmdline);
        printf(", \"malloc_arena_max_added\": %s}, \"runs\": [", note[1] ? "true" : "false");
        for (unsigned i = 0; i < nr; i++) {
            printf("%s{\"which\": \"%c\", \"pair\": %u", i ? ", " : "", runs[i].which,
                   runs[i].pair + 1);
            printf(", \"req_per_s\": %.1f, \"p50_us\": %.2f, \"p99_us\": %.2f, "
                   "\"mean_us\": %.2f, \"loadavg_after\": %.2f}",
                   metric(&runs[i].r, 0), metric(&runs[i].r, 1), metric(&runs[i].r, 2),
                   metric(&runs[i].r, 3), runs[i].r.load_after);
        }
        printf("], \"ratios_b_over_a\": {");
        for (int m = 0; m < NMETRICS; m++) {
            printf("%s\"%s\": {\"mean_a\": %.2f, \"mean_b\": %.2f, \"ratio_mean\": %.4f, "
                   "\"ci95_lo\": %.4f, \"ci95_hi\": %.4f, \"sd\": %.4f}",
                   m ? ", " : "", metric_names[m], mA[m], mB[m], rs[m].mean, rs[m].lo,
                   rs[m].hi, rs[m].sd);
        }
        printf("}}\n");
        free(x);
        free(runs);
        return 0;
    }

    printf("workload: %s bs=%u queues=%u depth=%u threads=%u, %.1f s per run, %u pairs "
           "(order ", lg_workload_name(p0), p0->bs, p0->queues, p0->depth, p0->threads,
           runs[0].r.seconds, pairs);
    for (unsigned i = 0; i < nr; i++) {
        putchar(runs[i].which);
    }
    printf(")\n");
    if (p0->cpus_driver || p0->cpus_daemon || p0->spin) {
        printf("driver cpus mask 0x%llx, daemon cpus mask 0x%llx (0 = any)%s\n",
               (unsigned long long)p0->cpus_driver, (unsigned long long)p0->cpus_daemon,
               p0->spin ? ", driver spins" : "");
    }
    for (int w = 0; w < 2; w++) {
        const struct run *R = runs[0].which == 'A' + w ? &runs[0] : &runs[1];
        printf("%c: %s\n", 'A' + w, R->r.cmdline);
        if (note[w]) {
            printf("   (MALLOC_ARENA_MAX=8 added: upstream's seccomp filter kills pool "
                   "threads without it)\n");
        }
    }
    printf("\n%-5s %-3s %11s %9s %9s %9s %8s\n", "pair", "run", "req/s", "p50(us)", "p99(us)",
           "mean(us)", "load1");
    for (unsigned i = 0; i < nr; i++) {
        printf("%-5u %-3c %11.0f %9.1f %9.1f %9.1f %8.2f\n", runs[i].pair + 1, runs[i].which,
               metric(&runs[i].r, 0), metric(&runs[i].r, 1), metric(&runs[i].r, 2),
               metric(&runs[i].r, 3), runs[i].r.load_after);
    }
    printf("\n%-9s %11s %11s %9s %21s\n", "metric", "mean A", "mean B", "B/A",
           "95% CI of B/A");
    for (int m = 0; m < NMETRICS; m++) {
        printf("%-9s %11.1f %11.1f %9.3f   [%7.3f, %7.3f]\n", metric_names[m], mA[m], mB[m],
               rs[m].mean, rs[m].lo, rs[m].hi);
    }
    printf("load1 = 1-minute load average after the run (other work on the machine "
           "skews latency)\n");
    if (pairs < 2) {
        printf("(one pair: no confidence interval; use --runs=N with N >= 3)\n");
    }
    free(x);
    free(runs);
    return 0;
}
