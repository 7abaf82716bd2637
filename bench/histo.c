/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Log-linear latency histogram, see histo.h. */
#include "histo.h"

#include <string.h>

void histo_init(struct histo *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

/* Values below HISTO_SUB get exact buckets; above, the top HISTO_SUB_BITS+1
 * significant bits pick the bucket. */
static unsigned bucket_of(uint64_t v)
{
    if (v < HISTO_SUB) {
        return (unsigned)v;
    }
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    if (msb >= HISTO_MAX_BITS) {
        return HISTO_NBUCKETS - 1;
    }
    unsigned shift = msb - HISTO_SUB_BITS;
    unsigned sub = (unsigned)(v >> shift) & (HISTO_SUB - 1);
    return (shift + 1) * HISTO_SUB + sub;
}

static uint64_t bucket_upper(unsigned i)
{
    if (i < HISTO_SUB) {
        return i;
    }
    unsigned shift = i / HISTO_SUB - 1;
    uint64_t sub = i % HISTO_SUB;
    return (((uint64_t)HISTO_SUB + sub + 1) << shift) - 1;
}

void histo_record(struct histo *h, uint64_t v)
{
    h->b[bucket_of(v)]++;
    h->count++;
    h->sum += v;
    if (v < h->min) {
        h->min = v;
    }
    if (v > h->max) {
        h->max = v;
    }
}

void histo_add(struct histo *dst, const struct histo *src)
{
    for (unsigned i = 0; i < HISTO_NBUCKETS; i++) {
        dst->b[i] += src->b[i];
    }
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min) {
        dst->min = src->min;
    }
    if (src->max > dst->max) {
        dst->max = src->max;
    }
}

uint64_t histo_quantile(const struct histo *h, double q)
{
    if (!h->count) {
        return 0;
    }
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if (rank >= h->count) {
        rank = h->count - 1;
    }
    uint64_t seen = 0;
    for (unsigned i = 0; i < HISTO_NBUCKETS; i++) {
        seen += h->b[i];
        if (seen > rank) {
            uint64_t u = bucket_upper(i);
            return u > h->max ? h->max : u;
        }
    }
    return h->max;
}

double histo_mean(const struct histo *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}
