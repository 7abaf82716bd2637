"""Plots of a vfs-bench summary (report.analyse()): Δ % per workload with
confidence bars, and latency distributions per side for one job. PNG and SVG.

matplotlib is optional: without it write_plots() returns no files and a
message saying why, and the report is written all the same.
"""

import glob
import importlib
import os
import sys
import sysconfig
import warnings

DEBIAN_DIST = "/usr/lib/python3/dist-packages"
INSTALL_HINT = "apt-get install python3-matplotlib"


def _system_matplotlib_usable():
    """Debian's python3-matplotlib lives in DEBIAN_DIST, which an interpreter
    other than /usr/bin/python3 (e.g. a pyenv one earlier in PATH) does not
    search. It can be borrowed only if its extension modules were built for
    this interpreter's ABI."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ""
    if not suffix or DEBIAN_DIST in sys.path:
        return False
    return bool(glob.glob(os.path.join(DEBIAN_DIST, "matplotlib", "*" + suffix)))


def load_pyplot():
    """(pyplot, None) or (None, reason)."""
    # A borrowed Debian matplotlib under a newer pyparsing warns about
    # deprecated names on import: noise for the report's reader.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _load_pyplot()


def _load_pyplot():
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        if not _system_matplotlib_usable():
            return None, ("plots skipped: matplotlib is not available to %s (%s)"
                          % (sys.executable, INSTALL_HINT))
        sys.path.append(DEBIAN_DIST)
        try:
            matplotlib = importlib.import_module("matplotlib")
        except Exception as e:  # a broken mix of packages: skip, do not fail
            sys.path.remove(DEBIAN_DIST)
            return None, ("plots skipped: Debian's matplotlib does not load in %s: %s (%s)"
                          % (sys.executable, e, INSTALL_HINT))
    try:
        matplotlib.use("Agg")
        plt = importlib.import_module("matplotlib.pyplot")
    except Exception as e:
        return None, "plots skipped: matplotlib.pyplot does not load: %s" % e
    return plt, None


def _safe(name):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _save(plt, fig, outdir, stem):
    files = []
    for ext in ("png", "svg"):
        name = "%s.%s" % (stem, ext)
        fig.savefig(os.path.join(outdir, name), dpi=110 if ext == "png" else None,
                    bbox_inches="tight")
        files.append(name)
    plt.close(fig)
    return files


def delta_plot(plt, summary, outdir):
    jobs = [j for j in summary["jobs"] if j["delta"]["delta_pct"] is not None]
    if not jobs:
        return []
    la = jobs[0]["sides"]["A"]["label"] or "A"
    lb = jobs[0]["sides"]["B"]["label"] or "B"
    names = [j["name"] for j in jobs]
    vals = [j["delta"]["delta_pct"] for j in jobs]
    lo_err, hi_err, colors = [], [], []
    for j, v in zip(jobs, vals):
        d = j["delta"]
        if d["ci_lo"] is None:
            lo_err.append(0.0)
            hi_err.append(0.0)
            colors.append("#cccccc")
        else:
            lo_err.append(v - d["ci_lo"])
            hi_err.append(d["ci_hi"] - v)
            if not d["significant"]:
                colors.append("#999999")
            else:
                colors.append("#2a7f3f" if v > 0 else "#b03a2e")
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.38 * len(jobs)))
    ys = list(range(len(jobs)))[::-1]
    ax.barh(ys, vals, color=colors, xerr=[lo_err, hi_err], capsize=3,
            error_kw={"elinewidth": 1, "ecolor": "black"})
    for y, j, v, he in zip(ys, jobs, vals, hi_err):
        text = ("%+.1f %s" % (v, j["delta"]["mark"])).strip()
        ax.annotate(text, (max(v + he, 0.0), y), xytext=(5, -3),
                    textcoords="offset points", fontsize=8)
    lo_x = min([0.0] + [v - e for v, e in zip(vals, lo_err)])
    hi_x = max([0.0] + [v + e for v, e in zip(vals, hi_err)])
    span = (hi_x - lo_x) or 1.0
    ax.set_xlim(lo_x - 0.05 * span, hi_x + 0.18 * span)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(ys)
    ax.set_yticklabels(names, fontsize=8)
    ax.set_xlabel("Δ IOPS %% of %s against %s (95 %% CI)" % (lb, la))
    reps = summary.get("reps")
    ax.set_title("%s vs %s%s" % (lb, la, ", %s reps per side" % reps if reps else ""), fontsize=10)
    ax.grid(axis="x", linestyle=":", linewidth=0.6)
    return _save(plt, fig, outdir, "delta")


def _plain_log_axis(ax):
    """Log x axis labelled 50, 100, 2000 instead of 5x10^1."""
    from matplotlib.ticker import FuncFormatter
    fmt = FuncFormatter(lambda v, _pos: "%g" % v)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(fmt)
    ax.xaxis.set_minor_formatter(FuncFormatter(
        lambda v, _pos: "%g" % v if ("%g" % v)[0] in "25" else ""))
    ax.tick_params(axis="x", which="minor", labelsize=7)


def _hist_steps(hist, borders):
    """Step outline (x in µs, fraction of requests) of a sparse histogram."""
    xs, ys = [], []
    count = hist["count"]
    if not count or not borders:
        return xs, ys
    for i, c in hist["buckets"]:
        lo = max(borders[i], 1) / 1000.0
        hi = (borders[i + 1] if i + 1 < len(borders) else borders[i] * 2) / 1000.0
        xs += [lo, lo, hi, hi]
        ys += [0.0, c / count, c / count, 0.0]
    return xs, ys


def latency_plot(plt, summary, outdir, job_name=None):
    jobs = summary["jobs"]
    if not jobs:
        return []
    job = next((j for j in jobs if j["name"] == job_name), None) if job_name else jobs[0]
    if job is None:
        raise ValueError("no job %r in the results" % job_name)
    borders = summary.get("histogram_borders")
    have_daemon = any(job["sides"][s]["daemon"] for s in ("A", "B")) and borders
    ncols = 2 if have_daemon else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6.0 * ncols, 4.0), squeeze=False)
    colors = {"A": "#1f5fa8", "B": "#d9731a"}
    col = 0
    if have_daemon:
        ax = axes[0][0]
        for s in ("A", "B"):
            dm = job["sides"][s]["daemon"]
            if not dm:
                ax.plot([], [], color=colors[s], label="%s %s: no counters" % (s, job["sides"][s]["label"]))
                continue
            h = dm["hists"]["total"]
            xs, ys = _hist_steps(h, borders)
            if xs:
                ax.plot(xs, ys, color=colors[s], linewidth=1.2,
                        label="%s %s (n=%d, mean %.1f µs)" % (
                            s, job["sides"][s]["label"], h["count"],
                            dm["phases"]["total"]["mean_us"]))
        _plain_log_axis(ax)
        ax.set_xlabel("daemon total latency per READ/WRITE (µs)")
        ax.set_ylabel("fraction of requests per bucket")
        ax.set_title("daemon (counters, pooled over runs)", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(linestyle=":", linewidth=0.6)
        col = 1
    ax = axes[0][col]
    plotted = False
    for s in ("A", "B"):
        side = job["sides"][s]
        pct = side.get("clat_pct_us") or {}
        pts = sorted((float(k), v) for k, v in pct.items() if v)
        if not pts:
            continue
        ax.plot([v for _, v in pts], [p for p, _ in pts], marker="o", markersize=3,
                color=colors[s], label="%s %s (mean %.1f µs)" % (
                    s, side["label"], side["clat_mean_us"] or 0.0))
        plotted = True
    _plain_log_axis(ax)
    ax.set_xlabel("fio completion latency (µs)")
    ax.set_ylabel("percentile")
    ax.set_title("guest (fio clat percentiles)", fontsize=10)
    if plotted:
        ax.legend(fontsize=8)
    ax.grid(linestyle=":", linewidth=0.6)
    fig.suptitle("latency: %s" % job["name"], fontsize=11)
    return _save(plt, fig, outdir, "latency-" + _safe(job["name"]))


def write_plots(summary, outdir, latency_job=None):
    """Write the plots into outdir: (list of file names, note or None).
    Never raises: a failure becomes the note."""
    plt, why = load_pyplot()
    if plt is None:
        return [], why
    files = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            files += delta_plot(plt, summary, outdir)
            files += latency_plot(plt, summary, outdir, latency_job)
    except Exception as e:
        return files, "plots incomplete: %s: %s" % (type(e).__name__, e)
    return files, None
