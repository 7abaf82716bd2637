/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Log-linear latency histogram: 64 sub-buckets per power of two (< 1.6 %
 * bucket width), values in nanoseconds up to 2^40.  Per-thread copies are
 * merged with histo_add(); no locking.
 */
#ifndef BENCH_HISTO_H
#define BENCH_HISTO_H

#include <stdint.h>

#define HISTO_SUB_BITS 6
#define HISTO_SUB (1u << HISTO_SUB_BITS)
#define HISTO_MAX_BITS 40
#define HISTO_NBUCKETS ((HISTO_MAX_BITS - HISTO_SUB_BITS + 1) * HISTO_SUB)

struct histo {
    uint64_t count;
    uint64_t sum;
    uint64_t min, max;
    uint64_t b[HISTO_NBUCKETS];
};

void histo_init(struct histo *h);
void histo_record(struct histo *h, uint64_t v);
void histo_add(struct histo *dst, const struct histo *src);
/* Value at quantile q (0..1): the upper edge of the bucket holding it,
 * clamped to max. 0 if empty. */
uint64_t histo_quantile(const struct histo *h, double q);
double histo_mean(const struct histo *h);

#endif
