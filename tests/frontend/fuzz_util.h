/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the two fuzzers (test_fuzz.c, test_fuzz_vhost.c) share: a seeded
 * generator (xorshift64*: a failure reproduces from its seed) and the
 * numeric option that may also come from the environment.
 */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fz_rng;

static inline void fz_seed(uint64_t seed, uint64_t stream)
{
    fz_rng = seed * 0x9E3779B97F4A7C15ULL + stream;
    if (!fz_rng)
        fz_rng = 1;
}

static inline uint64_t rnd64(void)
{
    fz_rng ^= fz_rng >> 12;
    fz_rng ^= fz_rng << 25;
    fz_rng ^= fz_rng >> 27;
    return fz_rng * 0x2545F4914F6CDD1DULL;
}

/* 0..n-1 (0 for n == 0) */
static inline uint32_t below(uint32_t n)
{
    return n ? (uint32_t)(rnd64() % n) : 0;
}

static inline bool chance(unsigned percent)
{
    return below(100) < percent;
}

/* --opt N, --opt=N, else $env, else @def; a bad number exits with 1. */
static inline unsigned long fz_opt(int argc, char **argv, const char *opt,
                                   const char *env, unsigned long def)
{
    const char *v = getenv(env);
    size_t n = strlen(opt);

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], opt) && i + 1 < argc) {
            v = argv[i + 1];
        } else if (!strncmp(argv[i], opt, n) && argv[i][n] == '=') {
            v = argv[i] + n + 1;
        }
    }
    if (!v) {
        return def;
    }
    char *end;
    errno = 0;
    unsigned long x = strtoul(v, &end, 0);
    if (errno || *end || end == v) {
        fprintf(stderr, "%s: not a number: %s\n", opt, v);
        exit(1);
    }
    return x;
}

#endif
