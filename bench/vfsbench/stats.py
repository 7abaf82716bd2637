"""Statistics for the vfs-bench report: Student t quantiles, Welch intervals,
the Δ % confidence interval, and arithmetic on the daemon's log-linear
histograms (virtiofsd/STATS.md).

Standard library only: the CI machine has no SciPy, and the report must run
wherever fio's JSON and the counters snapshots can be read.
"""

import math
from fractions import Fraction

# ---------------------------------------------------------------------------
# Student t distribution
# ---------------------------------------------------------------------------

_EPS = 1e-15
_TINY = 1e-300


def _beta_contfrac(a, b, x):
    """Continued fraction of the incomplete beta function, evaluated with the
    modified Lentz method. Converges fast for x < (a + 1) / (a + b + 2)."""
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1.0)
    if abs(d) < _TINY:
        d = _TINY
    d = 1.0 / d
    frac = d
    for m in range(1, 1000):
        # even step: d_{2m} = m (b - m) x / ((a + 2m - 1)(a + 2m))
        num = m * (b - m) * x / ((a + 2 * m - 1.0) * (a + 2 * m))
        d = 1.0 + num * d
        d = _TINY if abs(d) < _TINY else d
        c = 1.0 + num / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        frac *= c * d
        # odd step: d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1))
        num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1.0))
        d = 1.0 + num * d
        d = _TINY if abs(d) < _TINY else d
        c = 1.0 + num / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        step = c * d
        frac *= step
        if abs(step - 1.0) < _EPS:
            break
    return frac


def betainc_reg(a, b, x):
    """Regularized incomplete beta function I_x(a, b), a, b > 0, 0 <= x <= 1."""
    if a <= 0 or b <= 0:
        raise ValueError("betainc_reg: a and b must be > 0")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    front = math.exp(log_front)
    # The fraction converges for x below the mean; use the symmetry
    # I_x(a, b) = 1 - I_{1-x}(b, a) above it.
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_contfrac(a, b, x) / a
    return 1.0 - front * _beta_contfrac(b, a, 1.0 - x) / b


def normal_cdf(z):
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def t_cdf(t, df):
    """P(T <= t) for Student's t with df degrees of freedom (df > 0, may be
    fractional, as Welch's df is); df = inf is the normal distribution."""
    if df <= 0:
        raise ValueError("t_cdf: df must be > 0")
    if math.isinf(df):
        return normal_cdf(t)
    if t == 0:
        return 0.5
    # P(|T| > |t|) = I_{df / (df + t^2)}(df / 2, 1 / 2)
    tail = 0.5 * betainc_reg(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def _invert_increasing(f, p, lo, hi):
    """x with f(x) = p for an increasing f, by bracketing then bisection."""
    while f(hi) < p:
        lo, hi = hi, hi * 2.0
        if hi > 1e300:
            return math.inf
    for _ in range(400):
        mid = 0.5 * (lo + hi)
        if f(mid) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * max(1.0, abs(hi)):
            break
    return 0.5 * (lo + hi)


def normal_quantile(p):
    if not 0.0 < p < 1.0:
        raise ValueError("normal_quantile: p must be in (0, 1)")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -normal_quantile(1.0 - p)
    return _invert_increasing(normal_cdf, p, 0.0, 1.0)


def t_quantile(p, df):
    """The p quantile of Student's t with df degrees of freedom:
    t_quantile(0.975, 4) = 2.776..."""
    if not 0.0 < p < 1.0:
        raise ValueError("t_quantile: p must be in (0, 1)")
    if df is None or df <= 0:
        raise ValueError("t_quantile: df must be > 0")
    if math.isinf(df):
        return normal_quantile(p)
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    return _invert_increasing(lambda t: t_cdf(t, df), p, 0.0, 1.0)


# ---------------------------------------------------------------------------
# Samples, Welch's interval and the Δ % of the report
# ---------------------------------------------------------------------------

def mean(xs):
    xs = list(xs)
    if not xs:
        return None
    return math.fsum(xs) / len(xs)


def stdev(xs):
    """Sample standard deviation (n - 1); None below two samples."""
    xs = list(xs)
    if len(xs) < 2:
        return None
    m = mean(xs)
    return math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def welch(a, b, conf=0.95):
    """Welch's t interval for mean(b) - mean(a).

    Returns a dict: diff, se, df, t, lo, hi; se/df/t/lo/hi are None when
    either side has fewer than two samples. With no variance on either side
    the difference is exact (lo == hi == diff, df None)."""
    a, b = list(a), list(b)
    out = {"diff": None, "se": None, "df": None, "t": None, "lo": None, "hi": None}
    if not a or not b:
        return out
    out["diff"] = mean(b) - mean(a)
    if len(a) < 2 or len(b) < 2:
        return out
    va = stdev(a) ** 2 / len(a)
    vb = stdev(b) ** 2 / len(b)
    se = math.sqrt(va + vb)
    out["se"] = se
    if se == 0.0:
        out["lo"] = out["hi"] = out["diff"]
        return out
    # Welch–Satterthwaite degrees of freedom
    df = (va + vb) ** 2 / (va * va / (len(a) - 1) + vb * vb / (len(b) - 1))
    t = t_quantile(0.5 + conf / 2.0, df)
    out.update(df=df, t=t, lo=out["diff"] - t * se, hi=out["diff"] + t * se)
    return out


MARK_NOT_SIGNIFICANT = "~"
MARK_UNKNOWN = "?"


def significance_mark(significant):
    """'' significant, '~' not significant (the CI contains 0), '?' unknown
    (fewer than two samples on a side)."""
    if significant is None:
        return MARK_UNKNOWN
    return "" if significant else MARK_NOT_SIGNIFICANT


def delta_pct(a, b, conf=0.95):
    """Δ % of B against A and its confidence interval.

    Method: Welch's t interval for mean(B) - mean(A), divided by mean(A)
    (times 100). The denominator is treated as exact, so the interval ignores
    A's own uncertainty as a divisor; its significance is exactly Welch's
    two-sided test at level 1 - conf. Returns a dict with n_a, n_b, mean_a,
    mean_b, delta_pct, ci_lo, ci_hi, df, significant (True/False/None), mark.
    """
    a, b = list(a), list(b)
    w = welch(a, b, conf)
    ma, mb = mean(a), mean(b)
    out = {"n_a": len(a), "n_b": len(b), "mean_a": ma, "mean_b": mb,
           "delta_pct": None, "ci_lo": None, "ci_hi": None, "df": w["df"],
           "conf": conf, "significant": None}
    if ma is None or mb is None or ma == 0:
        out["mark"] = significance_mark(None)
        return out
    out["delta_pct"] = 100.0 * (mb - ma) / ma
    if w["lo"] is not None:
        lo, hi = 100.0 * w["lo"] / ma, 100.0 * w["hi"] / ma
        out["ci_lo"], out["ci_hi"] = min(lo, hi), max(lo, hi)
        out["significant"] = not (out["ci_lo"] <= 0.0 <= out["ci_hi"])
    out["mark"] = significance_mark(out["significant"])
    return out


# ---------------------------------------------------------------------------
# Histograms of the daemon's counters snapshot (STATS.md)
# ---------------------------------------------------------------------------

def buckets_of(h):
    """{index: count} of a snapshot histogram's sparse [[index, count], ...]."""
    if not h:
        return {}
    return {int(i): int(c) for i, c in h.get("buckets", []) if c}


def hist_sum(h):
    """The exact sum of a snapshot histogram (latency: sum_ns, else sum)."""
    if not h:
        return 0
    return h.get("sum_ns", h.get("sum", 0))


def hist_max(h):
    if not h:
        return None
    return h.get("max_ns", h.get("max"))


class Hist:
    """An interval histogram: later snapshot minus earlier, summable.

    `cap` is an upper bound for every sample in it: a snapshot's max is
    monotonic between resets, so the later snapshot's max bounds every sample
    of the interval (the interval's own max cannot be subtracted). It is used
    only for the open-ended last bucket."""

    def __init__(self, buckets=None, count=0, total=0, cap=None):
        self.buckets = dict(buckets or {})
        self.count = count
        self.total = total
        self.cap = cap

    @classmethod
    def delta(cls, after, before):
        """after - before, bucket by bucket. A bucket going down means the
        counters were reset in between: ValueError."""
        ab, bb = buckets_of(after), buckets_of(before)
        diff = {}
        for i in set(ab) | set(bb):
            d = ab.get(i, 0) - bb.get(i, 0)
            if d < 0:
                raise ValueError("histogram bucket %d went down (reset?)" % i)
            if d:
                diff[i] = d
        count = sum(diff.values())
        total = hist_sum(after) - hist_sum(before)
        return cls(diff, count, total, hist_max(after))

    def add(self, other):
        """Merge another interval histogram into this one."""
        for i, c in other.buckets.items():
            self.buckets[i] = self.buckets.get(i, 0) + c
        self.count += other.count
        self.total += other.total
        if other.cap is not None:
            self.cap = other.cap if self.cap is None else max(self.cap, other.cap)
        return self

    def mean(self):
        return self.total / self.count if self.count else None

    def percentile(self, q, borders):
        return hist_percentile(self.buckets, borders, q, self.cap)

    def to_json(self):
        return {"count": self.count, "sum": self.total, "cap": self.cap,
                "buckets": [[i, self.buckets[i]] for i in sorted(self.buckets)]}


def bucket_upper(borders, i):
    """The largest value bucket i holds; None for the last (open) bucket."""
    if i + 1 < len(borders):
        return borders[i + 1] - 1
    return None


def hist_percentile(buckets, borders, q, cap=None):
    """Percentile q of a sparse histogram by the daemon's rule (STATS.md):
    take the sample of rank ceil(q * count) and report the largest value of
    its bucket. The daemon also caps by the exact max, but an interval's max
    cannot be subtracted, so an interval's percentile is capped only by its
    top non-empty bucket's upper end, which the rule never exceeds. The last
    bucket is open-ended: there `cap` (an upper bound of every sample, e.g.
    the later snapshot's max) is reported, or the bucket's lower border.
    None for an empty histogram."""
    count = sum(buckets.values())
    if count <= 0:
        return None
    qf = Fraction(str(q)) if isinstance(q, float) else Fraction(q)
    rank = math.ceil(qf * count)
    rank = min(max(rank, 1), count)
    seen = 0
    for i in sorted(buckets):
        seen += buckets[i]
        if seen >= rank:
            up = bucket_upper(borders, i)
            if up is None:
                return max(cap, borders[i]) if cap is not None else borders[i]
            return up
    raise AssertionError("unreachable: rank beyond count")


# ---------------------------------------------------------------------------
# Interval of two counters snapshots
# ---------------------------------------------------------------------------

PHASES = ("wait", "service", "complete", "total")


def _num(d, key):
    v = d.get(key) if d else None
    return v if isinstance(v, (int, float)) else 0


def snapshot_delta(before, after):
    """What happened between two virtiofsd-stats snapshots.

    Returns None when either is None (no control socket) or the daemon had
    stats off; raises ValueError if the counters were reset in between.
    Counts over request queues only (the hiprio queue carries FORGETs and
    interrupts), all modes merged:
      window_s, requests, kicks, rpk_sum (Δ reqs_per_kick.sum), notify_sent,
      notify_suppressed, ops: {opcode: {count, errors, bytes_in, bytes_out,
      phases: {phase: Hist}}}, and the later snapshot's state: modes,
      pool_threads, pool_busy, inflight_max (sums over request queues).
    """
    if not before or not after:
        return None
    if not after.get("stats_enabled", True) or not before.get("stats_enabled", True):
        return None
    if after.get("since_reset_ns", 0) < before.get("since_reset_ns", 0):
        raise ValueError("counters were reset between the snapshots")
    bq = {q["index"]: q for q in before.get("queues", [])}
    out = {
        "window_s": (after["time_ns"] - before["time_ns"]) / 1e9,
        "requests": 0, "kicks": 0, "rpk_sum": 0,
        "notify_sent": 0, "notify_suppressed": 0,
        "ops": {}, "modes": [], "pool_threads": 0, "pool_busy": 0,
        "inflight_max": 0,
    }
    for qa in after.get("queues", []):
        if qa.get("role") != "request":
            continue
        qb = bq.get(qa["index"], {})
        for key, field in (("requests", "requests"), ("kicks", "kicks"),
                           ("notify_sent", "notify_sent"),
                           ("notify_suppressed", "notify_suppressed")):
            d = _num(qa, field) - _num(qb, field)
            if d < 0:
                raise ValueError("queue %d %s went down (reset?)" % (qa["index"], field))
            out[key] += d
        out["rpk_sum"] += hist_sum(qa.get("reqs_per_kick")) - hist_sum(qb.get("reqs_per_kick"))
        out["modes"].append(qa.get("mode"))
        pool = qa.get("pool") or {}
        out["pool_threads"] += _num(pool, "threads")
        out["pool_busy"] += _num(pool, "busy")
        out["inflight_max"] += _num(qa, "inflight_max")
        bops = {(o["opcode"], o.get("mode")): o for o in qb.get("ops", [])}
        for oa in qa.get("ops", []):
            ob = bops.get((oa["opcode"], oa.get("mode")), {})
            count = _num(oa, "count") - _num(ob, "count")
            if count < 0:
                raise ValueError("op %s count went down (reset?)" % oa["opcode"])
            if count == 0:
                continue
            rec = out["ops"].setdefault(oa["opcode"], {
                "count": 0, "errors": 0, "bytes_in": 0, "bytes_out": 0,
                "phases": {p: Hist() for p in PHASES}})
            rec["count"] += count
            for f in ("errors", "bytes_in", "bytes_out"):
                rec[f] += _num(oa, f) - _num(ob, f)
            for p in PHASES:
                rec["phases"][p].add(Hist.delta(oa.get(p), ob.get(p)))
    return out
