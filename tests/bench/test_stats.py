#!/usr/bin/env python3
"""The bench report's statistics (bench/vfsbench/stats.py) on fixed inputs:
t quantiles against published table values, Welch intervals and Δ % CIs of
known samples, significance marks, and histogram subtraction/percentiles on
hand-made histograms and counters snapshots."""

import math
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))

from vfsbench import stats as st  # noqa: E402

# Two-sided 95 % (p = 0.975) and other quantiles from printed t tables.
T_TABLE = [
    (0.975, 1, 12.7062), (0.975, 2, 4.3027), (0.975, 3, 3.1824),
    (0.975, 4, 2.7764), (0.975, 5, 2.5706), (0.975, 10, 2.2281),
    (0.975, 20, 2.0860), (0.975, 30, 2.0423), (0.975, 60, 2.0003),
    (0.975, 120, 1.9799), (0.95, 1, 6.3138), (0.95, 5, 2.0150),
    (0.95, 30, 1.6973), (0.995, 3, 5.8409), (0.995, 10, 3.1693),
    (0.9, 4, 1.5332),
]


def t_pdf(x, df):
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    return c * (1 + x * x / df) ** (-(df + 1) / 2)


def simpson(f, a, b, n=20000):
    h = (b - a) / n
    s = f(a) + f(b)
    for i in range(1, n):
        s += (4 if i % 2 else 2) * f(a + i * h)
    return s * h / 3


class TQuantile(unittest.TestCase):
    def test_table_values(self):
        for p, df, want in T_TABLE:
            with self.subTest(p=p, df=df):
                self.assertAlmostEqual(st.t_quantile(p, df), want, places=3)

    def test_lower_tail_is_negative_mirror(self):
        self.assertAlmostEqual(st.t_quantile(0.025, 4), -2.7764, places=3)
        self.assertEqual(st.t_quantile(0.5, 7), 0.0)

    def test_large_df_tends_to_normal(self):
        self.assertAlmostEqual(st.t_quantile(0.975, 1e7), 1.959964, places=5)
        self.assertAlmostEqual(st.t_quantile(0.975, math.inf), 1.959964, places=5)
        self.assertAlmostEqual(st.normal_quantile(0.95), 1.644854, places=5)

    def test_fractional_df_against_integrated_density(self):
        # Welch's df is fractional: check the CDF there by integrating the
        # t density numerically, independently of the beta-function route.
        for df in (1.5, 2.5, 3.19, 7.3):
            q = st.t_quantile(0.975, df)
            with self.subTest(df=df):
                self.assertAlmostEqual(simpson(lambda x: t_pdf(x, df), 0.0, q), 0.475, places=6)
                self.assertGreater(q, st.t_quantile(0.975, math.ceil(df)))
                self.assertLess(q, st.t_quantile(0.975, math.floor(df)))

    def test_cdf_roundtrip(self):
        for p in (0.6, 0.9, 0.975, 0.999):
            for df in (1, 3, 12.5, 50):
                self.assertAlmostEqual(st.t_cdf(st.t_quantile(p, df), df), p, places=10)
        self.assertEqual(st.t_cdf(0.0, 3), 0.5)

    def test_incomplete_beta_closed_forms(self):
        for x in (0.1, 0.37, 0.5, 0.9):
            self.assertAlmostEqual(st.betainc_reg(1, 1, x), x, places=12)
            self.assertAlmostEqual(st.betainc_reg(3, 1, x), x ** 3, places=12)
            self.assertAlmostEqual(st.betainc_reg(1, 4, x), 1 - (1 - x) ** 4, places=12)
        self.assertAlmostEqual(st.betainc_reg(2.5, 2.5, 0.5), 0.5, places=12)

    def test_bad_arguments(self):
        for p, df in ((0.0, 3), (1.0, 3), (0.975, 0), (0.975, -1)):
            with self.assertRaises(ValueError):
                st.t_quantile(p, df)


class Samples(unittest.TestCase):
    def test_mean_stdev(self):
        xs = [2, 4, 4, 4, 5, 5, 7, 9]
        self.assertEqual(st.mean(xs), 5)
        self.assertAlmostEqual(st.stdev(xs), math.sqrt(32 / 7), places=12)
        self.assertIsNone(st.stdev([3]))
        self.assertIsNone(st.mean([]))

    def test_welch_equal_variances(self):
        w = st.welch([1300, 1400, 1200], [1000, 1100, 900])
        self.assertEqual(w["diff"], -300)
        self.assertAlmostEqual(w["se"], math.sqrt(20000 / 3), places=9)
        self.assertAlmostEqual(w["df"], 4.0, places=12)
        self.assertAlmostEqual(w["lo"], -300 - 2.7764451 * 81.649658, places=3)
        self.assertAlmostEqual(w["hi"], -300 + 2.7764451 * 81.649658, places=3)

    def test_welch_unequal_variances_df(self):
        # va = 4/3, vb = (500/3)/4: df = 43^2 / ((4/3)^2/2 + (125/3)^2/3)
        w = st.welch([10, 12, 14], [20, 30, 40, 50])
        self.assertAlmostEqual(w["se"], math.sqrt(43), places=9)
        self.assertAlmostEqual(w["df"], 1849 / ((16 / 9) / 2 + (15625 / 9) / 3), places=9)
        self.assertAlmostEqual(w["diff"], 23.0)

    def test_delta_pct_significant(self):
        d = st.delta_pct([1300, 1400, 1200], [1000, 1100, 900])
        self.assertAlmostEqual(d["delta_pct"], -300 / 1300 * 100, places=9)
        half = 2.7764451 * 81.649658 / 1300 * 100
        self.assertAlmostEqual(d["ci_lo"], -300 / 13 - half, places=3)
        self.assertAlmostEqual(d["ci_hi"], -300 / 13 + half, places=3)
        self.assertIs(d["significant"], True)
        self.assertEqual(d["mark"], "")

    def test_delta_pct_not_significant(self):
        d = st.delta_pct([2000, 2200, 1800], [2100, 2300, 1900])
        self.assertAlmostEqual(d["delta_pct"], 5.0, places=9)
        half = 2.7764451 * math.sqrt(80000 / 3) / 2000 * 100
        self.assertAlmostEqual(d["ci_lo"], 5.0 - half, places=3)
        self.assertAlmostEqual(d["ci_hi"], 5.0 + half, places=3)
        self.assertIs(d["significant"], False)
        self.assertEqual(d["mark"], "~")

    def test_delta_pct_too_few_samples(self):
        d = st.delta_pct([5000, 5000, 5000], [6000])
        self.assertAlmostEqual(d["delta_pct"], 20.0)
        self.assertIsNone(d["ci_lo"])
        self.assertIsNone(d["significant"])
        self.assertEqual(d["mark"], "?")

    def test_delta_pct_without_variance(self):
        d = st.delta_pct([100, 100], [110, 110])
        self.assertEqual((d["ci_lo"], d["ci_hi"]), (10.0, 10.0))
        self.assertIs(d["significant"], True)
        d = st.delta_pct([100, 100], [100, 100])
        self.assertEqual(d["mark"], "~")

    def test_delta_pct_zero_or_empty_a(self):
        self.assertIsNone(st.delta_pct([0, 0], [1, 2])["delta_pct"])
        self.assertEqual(st.delta_pct([], [1, 2])["mark"], "?")

    def test_marks(self):
        self.assertEqual(st.significance_mark(True), "")
        self.assertEqual(st.significance_mark(False), "~")
        self.assertEqual(st.significance_mark(None), "?")


# A hand-made layout: buckets [0,10) [10,20) [20,40) [40,80) [80,inf)
BORDERS = [0, 10, 20, 40, 80]


def hist(buckets, total, mx):
    return {"count": sum(c for _, c in buckets), "sum_ns": total, "max_ns": mx,
            "buckets": [list(b) for b in buckets]}


class Histograms(unittest.TestCase):
    before = hist([(1, 2), (2, 2), (4, 1)], 30 + 60 + 900, 900)
    after = hist([(0, 2), (1, 5), (2, 10), (3, 3), (4, 1)], 990 + 10 + 45 + 200 + 150, 900)

    def test_subtract(self):
        h = st.Hist.delta(self.after, self.before)
        self.assertEqual(h.buckets, {0: 2, 1: 3, 2: 8, 3: 3})
        self.assertEqual(h.count, 16)
        self.assertEqual(h.total, 405)
        self.assertAlmostEqual(h.mean(), 405 / 16)

    def test_percentiles_of_difference(self):
        h = st.Hist.delta(self.after, self.before)
        # cumulative counts: 2, 5, 13, 16
        self.assertEqual(h.percentile(0.5, BORDERS), 39)      # rank 8
        self.assertEqual(h.percentile(0.99, BORDERS), 79)     # rank 16
        self.assertEqual(h.percentile(0.125, BORDERS), 9)     # rank 2 exactly
        self.assertEqual(h.percentile(0.1875, BORDERS), 19)   # rank 3 exactly
        self.assertEqual(h.percentile(0.8125, BORDERS), 39)   # rank 13 exactly
        self.assertEqual(h.percentile(0.82, BORDERS), 79)     # rank 14
        # the outlier in bucket 4 was before the interval: not in any percentile
        self.assertEqual(h.percentile(1.0, BORDERS), 79)

    def test_open_last_bucket(self):
        b = {1: 1, 4: 1}
        self.assertEqual(st.hist_percentile(b, BORDERS, 0.99, cap=500), 500)
        self.assertEqual(st.hist_percentile(b, BORDERS, 0.99), 80)
        self.assertEqual(st.hist_percentile(b, BORDERS, 0.5, cap=500), 19)
        self.assertIsNone(st.hist_percentile({}, BORDERS, 0.5))

    def test_merge(self):
        h = st.Hist.delta(self.after, self.before)
        h.add(st.Hist({3: 4}, 4, 200, 70))
        self.assertEqual(h.buckets[3], 7)
        self.assertEqual(h.count, 20)
        self.assertEqual(h.percentile(0.5, BORDERS), 39)      # rank 10
        self.assertEqual(h.percentile(0.7, BORDERS), 79)      # rank 14

    def test_reset_in_between_is_refused(self):
        with self.assertRaises(ValueError):
            st.Hist.delta(self.before, self.after)

    def test_plain_sum_for_counts(self):
        a = {"count": 3, "sum": 12, "max": 8, "buckets": [[4, 3]]}
        b = {"count": 1, "sum": 4, "max": 4, "buckets": [[4, 1]]}
        h = st.Hist.delta(a, b)
        self.assertEqual((h.count, h.total, h.cap), (2, 8, 8))


def op(opcode, mode, count, wait_buckets, errors=0):
    h = hist(wait_buckets, sum(c * 15 for _, c in wait_buckets), 15)
    return {"opcode": opcode, "mode": mode, "count": count, "errors": errors,
            "bytes_in": 10 * count, "bytes_out": 20 * count,
            "wait": h, "service": h, "complete": h, "total": h}


def snap(t, since, req_ops, hi_kicks, kicks, rpk_sum, sent, supp, mode="inline", busy=0):
    return {"schema": "virtiofsd-stats", "version": 1, "time_ns": t,
            "since_reset_ns": since, "stats_enabled": True,
            "histogram": {"sub_buckets": 8, "nbuckets": 5, "borders": BORDERS},
            "queues": [
                {"index": 0, "role": "hiprio", "mode": "inline", "requests": hi_kicks,
                 "kicks": hi_kicks, "reqs_per_kick": {"count": hi_kicks, "sum": 0, "buckets": []},
                 "notify_sent": hi_kicks, "notify_suppressed": 0,
                 "pool": {"threads": 0, "busy": 0}, "inflight_max": 0,
                 "ops": [op("FORGET", "inline", hi_kicks, [(1, hi_kicks)])] if hi_kicks else []},
                {"index": 1, "role": "request", "mode": mode,
                 "requests": sum(o["count"] for o in req_ops), "kicks": kicks,
                 "reqs_per_kick": {"count": kicks, "sum": rpk_sum, "buckets": []},
                 "notify_sent": sent, "notify_suppressed": supp,
                 "pool": {"threads": 4, "busy": busy}, "inflight_max": 3, "ops": req_ops}]}


class SnapshotDelta(unittest.TestCase):
    def test_interval(self):
        before = snap(1_000_000_000, 10, [op("READ", "inline", 5, [(1, 5)])], 2, 5, 5, 5, 0)
        after = snap(3_500_000_000, 2_500_000_010,
                     [op("READ", "inline", 5, [(1, 5)]),
                      op("READ", "pool", 40, [(2, 30), (3, 10)], errors=2),
                      op("OPEN", "pool", 1, [(1, 1)])],
                     9, 15, 46, 30, 16, mode="pool", busy=2)
        d = st.snapshot_delta(before, after)
        self.assertEqual(d["window_s"], 2.5)
        self.assertEqual(d["requests"], 41)
        self.assertEqual(d["kicks"], 10)          # hiprio's 7 kicks stay out
        self.assertEqual(d["rpk_sum"], 41)
        self.assertEqual((d["notify_sent"], d["notify_suppressed"]), (25, 16))
        self.assertEqual(sorted(d["ops"]), ["OPEN", "READ"])
        rd = d["ops"]["READ"]
        self.assertEqual((rd["count"], rd["errors"], rd["bytes_in"]), (40, 2, 400))
        self.assertEqual(rd["phases"]["wait"].buckets, {2: 30, 3: 10})
        self.assertEqual(rd["phases"]["wait"].percentile(0.75, BORDERS), 39)
        self.assertEqual(rd["phases"]["wait"].percentile(0.76, BORDERS), 79)
        self.assertEqual((d["pool_busy"], d["pool_threads"], d["modes"]), (2, 4, ["pool"]))

    def test_null_and_disabled(self):
        s = snap(1, 1, [], 0, 0, 0, 0, 0)
        self.assertIsNone(st.snapshot_delta(None, s))
        self.assertIsNone(st.snapshot_delta(s, None))
        off = dict(s, stats_enabled=False)
        self.assertIsNone(st.snapshot_delta(off, off))

    def test_reset_detected(self):
        a = snap(5, 100, [op("READ", "inline", 5, [(1, 5)])], 0, 5, 5, 5, 0)
        b = snap(9, 4, [op("READ", "inline", 1, [(1, 1)])], 0, 1, 1, 1, 0)
        with self.assertRaises(ValueError):
            st.snapshot_delta(a, b)


if __name__ == "__main__":
    unittest.main(verbosity=2)
