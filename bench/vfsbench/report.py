"""vfs-bench report: renders a results folder's raw.json (FORMAT.md) into
report.md, results.csv, summary.json and plots, and compares two folders.

  python3 -m vfsbench.report render DIR [--latency-job JOB]
  python3 -m vfsbench.report compare DIR1 DIR2

Everything is derived from raw.json alone, so any folder can be re-rendered.
"""

import argparse
import csv
import datetime
import json
import math
import os
import sys

from . import stats as st

RAW = "raw.json"
READ_WRITE = ("READ", "WRITE")
SIDES = ("A", "B")
CONF = 0.95

CI_METHOD = ("Δ % = (mean IOPS B − mean IOPS A) / mean IOPS A. 95 % CI: Welch's t "
             "interval of mean B − mean A (Welch–Satterthwaite df, Student t "
             "quantile), divided by mean A; A's mean is taken as exact in the "
             "divisor. `~` = not significant (the CI contains 0), `?` = unknown "
             "(fewer than 2 good runs on a side).")


# ---------------------------------------------------------------------------
# Loading and per-run figures
# ---------------------------------------------------------------------------

def load_raw(results_dir):
    path = os.path.join(results_dir, RAW)
    with open(path) as f:
        raw = json.load(f)
    if raw.get("format") != "vfs-bench-raw":
        raise ValueError("%s: not a vfs-bench raw file (format %r)" % (path, raw.get("format")))
    if raw.get("version") != 1:
        raise ValueError("%s: unsupported raw format version %r" % (path, raw.get("version")))
    return raw


def run_failure(run):
    """Why a run is left out of the statistics, or None if it is good."""
    if run.get("error"):
        return str(run["error"])
    fio = run.get("fio")
    if not fio or not fio.get("jobs"):
        return "no fio output"
    errs = sorted({j.get("error", 0) for j in fio["jobs"] if j.get("error", 0)})
    if errs:
        return "fio error %s" % ", ".join(str(e) for e in errs)
    return None


def fio_metrics(fio):
    """Sum over fio's jobs[] and the read + write directions: IOPS (fio's own
    iops, not bw / 1024), bw_bytes, total_ios; clat mean and percentiles
    weighted by each direction's I/O count."""
    out = {"iops": 0.0, "bw_bytes": 0.0, "total_ios": 0, "runtime_s": 0.0,
           "clat_mean_ns": None, "clat_p99_ns": None, "clat_pct_ns": {}}
    wsum = wmean = 0.0
    pct_w = {}
    for job in fio.get("jobs", []):
        out["runtime_s"] = max(out["runtime_s"], job.get("job_runtime", 0) / 1000.0)
        for dname in ("read", "write"):
            d = job.get(dname) or {}
            ios = d.get("total_ios", 0) or 0
            out["iops"] += d.get("iops", 0.0) or 0.0
            out["bw_bytes"] += d.get("bw_bytes", 0) or 0
            out["total_ios"] += ios
            clat = d.get("clat_ns") or {}
            if ios <= 0 or not clat.get("N"):
                continue
            wsum += ios
            wmean += ios * clat.get("mean", 0.0)
            for key, v in (clat.get("percentile") or {}).items():
                acc = pct_w.setdefault(key, [0.0, 0.0])
                acc[0] += ios * v
                acc[1] += ios
    if wsum:
        out["clat_mean_ns"] = wmean / wsum
        out["clat_pct_ns"] = {k: s / w for k, (s, w) in pct_w.items() if w}
        out["clat_p99_ns"] = out["clat_pct_ns"].get("99.000000")
    return out


# ---------------------------------------------------------------------------
# Analysis: runs -> per job x side -> A/B comparison
# ---------------------------------------------------------------------------

def _us(ns):
    return None if ns is None else ns / 1000.0


def _daemon_side(deltas, fio_ios, borders):
    """Pool the stats deltas of one job x side's good runs."""
    window = sum(d["window_s"] for d in deltas)
    ops = {}
    phases = {p: st.Hist() for p in st.PHASES}
    kicks = rpk_sum = sent = suppressed = 0
    busy, threads, modes, inflight_max = [], [], set(), 0
    for d in deltas:
        for name, o in d["ops"].items():
            rec = ops.setdefault(name, {"count": 0, "errors": 0, "bytes_in": 0, "bytes_out": 0})
            for f in rec:
                rec[f] += o[f]
            if name in READ_WRITE:
                for p in st.PHASES:
                    phases[p].add(o["phases"][p])
        kicks += d["kicks"]
        rpk_sum += d["rpk_sum"]
        sent += d["notify_sent"]
        suppressed += d["notify_suppressed"]
        busy.append(d["pool_busy"])
        threads.append(d["pool_threads"])
        modes.update(m for m in d["modes"] if m)
        inflight_max = max(inflight_max, d["inflight_max"])
    for name, rec in ops.items():
        rec["req_s"] = rec["count"] / window if window > 0 else None
    rw = sum(ops.get(n, {}).get("count", 0) for n in READ_WRITE)
    return {
        "runs": len(deltas), "window_s": window, "ops": ops,
        "read_rps": ops["READ"]["req_s"] if "READ" in ops else 0.0,
        "write_rps": ops["WRITE"]["req_s"] if "WRITE" in ops else 0.0,
        "rw_count": rw,
        "fio_ios": fio_ios,
        "rw_per_fio_io": rw / fio_ios if fio_ios else None,
        "other_count": sum(o["count"] for n, o in ops.items() if n not in READ_WRITE),
        "errors": sum(o["errors"] for o in ops.values()),
        "phases": {p: {"count": h.count, "mean_us": _us(h.mean()),
                       "p50_us": _us(h.percentile(0.5, borders)),
                       "p99_us": _us(h.percentile(0.99, borders))}
                   for p, h in phases.items()},
        "hists": {p: h.to_json() for p, h in phases.items()},
        "reqs_per_kick": rpk_sum / kicks if kicks else None,
        "kicks": kicks,
        "notify_sent": sent, "notify_suppressed": suppressed,
        "suppressed_frac": suppressed / (sent + suppressed) if sent + suppressed else None,
        "pool_busy": st.mean(busy), "pool_threads": st.mean(threads),
        "modes": sorted(modes), "inflight_max": inflight_max,
    }


def _side_summary(cfg_side, runs, borders_box, warnings):
    good, failed = [], []
    for r in runs:
        why = run_failure(r)
        if why:
            failed.append({"rep": r.get("rep"), "seq": r.get("seq"), "error": why})
        else:
            good.append(r)
    fm = [fio_metrics(r["fio"]) for r in good]
    iops = [m["iops"] for m in fm]
    out = {
        "label": cfg_side.get("label"), "mode": cfg_side.get("mode"),
        "n": len(good), "n_failed": len(failed), "failed": failed,
        "iops": iops, "iops_mean": st.mean(iops), "iops_sd": st.stdev(iops),
        "bw_mib_s": st.mean([m["bw_bytes"] / 1048576.0 for m in fm]),
        "clat_mean_us": _us(st.mean([m["clat_mean_ns"] for m in fm if m["clat_mean_ns"] is not None])),
        "clat_p99_us": _us(st.mean([m["clat_p99_ns"] for m in fm if m["clat_p99_ns"] is not None])),
        "total_ios": sum(m["total_ios"] for m in fm),
        "daemon": None,
    }
    pct = {}
    for m in fm:
        for k, v in m["clat_pct_ns"].items():
            pct.setdefault(k, []).append(v)
    out["clat_pct_us"] = {k: _us(st.mean(v)) for k, v in sorted(pct.items(), key=lambda kv: float(kv[0]))}

    deltas, fio_ios = [], 0
    for r, m in zip(good, fm):
        try:
            d = st.snapshot_delta(r.get("stats_before"), r.get("stats_after"))
        except (ValueError, KeyError, TypeError) as e:
            warnings.append("%s %s rep %s: counters unusable (%s)" % (r["job"], r["side"], r.get("rep"), e))
            continue
        if d is None:
            continue
        # The snapshots bracket fio's start-up and exit too (seconds under
        # TCG): rates use the run's I/O time when the runner recorded it.
        d["snapshot_window_s"] = d["window_s"]
        if r.get("fio_runtime_s"):
            d["window_s"] = float(r["fio_runtime_s"])
        if borders_box[0] is None:
            borders_box[0] = r["stats_after"]["histogram"]["borders"]
        deltas.append(d)
        fio_ios += m["total_ios"]
    if deltas:
        dm = _daemon_side(deltas, fio_ios, borders_box[0])
        tot = dm["phases"]["total"]["mean_us"]
        dm["remainder_us"] = (out["clat_mean_us"] - tot
                              if out["clat_mean_us"] is not None and tot is not None else None)
        out["daemon"] = dm
    return out


def _fmt_signed(v, unit="", nd=2):
    return ("%+." + str(nd) + "f%s") % (v, unit)


def _phase_change(a, b, phase):
    ma = a["daemon"]["phases"][phase]["mean_us"]
    mb = b["daemon"]["phases"][phase]["mean_us"]
    if ma is None or mb is None:
        return None, None
    return mb - ma, ma


def _unchanged(delta, base):
    # within 0.5 µs or 3 % of A's value: call it unchanged
    return abs(delta) <= max(0.5, 0.03 * abs(base or 0.0))


def why_line(job):
    """One factual sentence from the counters on what differs between B and A."""
    a, b, d = job["sides"]["A"], job["sides"]["B"], job["delta"]
    bl, al = b["label"] or "B", a["label"] or "A"
    if d["delta_pct"] is None:
        return "no comparison: %s" % ("no good runs on A" if not a["n"] else "no good runs on B")
    sig = {True: "significant", False: "not significant", None: "significance unknown"}[d["significant"]]
    head = "%s %s IOPS vs %s (%s)" % (bl, _fmt_signed(d["delta_pct"], " %", 1), al, sig)
    missing = [s for s in SIDES if job["sides"][s]["daemon"] is None]
    if missing:
        return head + "; no daemon counters on %s" % " and ".join(missing)
    da, db = a["daemon"], b["daemon"]
    if not da["phases"]["total"]["count"] or not db["phases"]["total"]["count"]:
        return head + "; the daemon saw no READ/WRITE on %s" % (
            "A" if not da["phases"]["total"]["count"] else "B")
    parts = []
    changes = {}
    for p in ("wait", "service", "complete"):
        delta, base = _phase_change(a, b, p)
        changes[p] = (delta, base)
    biggest = max(changes, key=lambda p: abs(changes[p][0]))
    pool_side = [s for s in SIDES if "pool" in job["sides"][s]["daemon"]["modes"]]
    for p in ("wait", "service", "complete"):
        delta, base = changes[p]
        if _unchanged(delta, base):
            parts.append("%s unchanged (%s µs)" % (p, _fmt_signed(delta)))
        else:
            tag = ""
            if p == "wait" and p == biggest and len(pool_side) == 1:
                tag = " (pool handoff on %s)" % pool_side[0]
            parts.append("%s %s µs/request%s" % (p, _fmt_signed(delta), tag))
    line = head + "; daemon per READ/WRITE: " + ", ".join(parts)
    if da["remainder_us"] is not None and db["remainder_us"] is not None:
        dc = b["clat_mean_us"] - a["clat_mean_us"]
        dr = db["remainder_us"] - da["remainder_us"]
        line += "; fio clat %s µs, of which outside the daemon (guest + transport) %s µs" % (
            _fmt_signed(dc), _fmt_signed(dr))
    ka, kb = da["reqs_per_kick"], db["reqs_per_kick"]
    if ka and kb and abs(kb - ka) >= 0.1 * max(ka, kb):
        line += "; requests per kick %.2f → %.2f" % (ka, kb)
    sa, sb = da["suppressed_frac"], db["suppressed_frac"]
    if sa is not None and sb is not None and abs(sb - sa) >= 0.05:
        line += "; notifications suppressed %.0f %% → %.0f %%" % (100 * sa, 100 * sb)
    for s in SIDES:
        cov = job["sides"][s]["daemon"]["rw_per_fio_io"]
        if cov is not None and cov < 0.5:
            line += "; on %s the daemon saw %.0f %% of fio's I/Os (the rest did not leave the guest)" % (
                s, 100 * cov)
    return line


def analyse(raw):
    """The report's whole content as one JSON-serialisable dict."""
    cfg = raw.get("config", {})
    names = [j["name"] for j in raw.get("jobs", [])]
    for r in raw.get("runs", []):
        if r["job"] not in names:
            names.append(r["job"])
    meta = {j["name"]: j for j in raw.get("jobs", [])}
    borders_box = [None]
    warnings = []
    jobs = []
    for name in names:
        runs = [r for r in raw.get("runs", []) if r["job"] == name]
        if not runs:
            continue
        sides = {}
        for s in SIDES:
            cs = cfg.get(s.lower(), {}) or {}
            srun = sorted((r for r in runs if r["side"] == s), key=lambda r: r.get("seq", 0))
            if not cs.get("label") and srun:
                cs = dict(cs, label=srun[0].get("label"))
            sides[s] = _side_summary(cs, srun, borders_box, warnings)
        delta = st.delta_pct(sides["A"]["iops"], sides["B"]["iops"], CONF)
        job = {"name": name, "job": meta.get(name, {}), "sides": sides, "delta": delta}
        job["why"] = why_line(job)
        jobs.append(job)
    reps = cfg.get("reps")
    return {"format": "vfs-bench-summary", "version": 1,
            "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "config": cfg, "method": CI_METHOD, "confidence": CONF, "reps": reps,
            "histogram_borders": borders_box[0], "jobs": jobs, "warnings": warnings,
            "failed_runs": [dict(f, job=j["name"], side=s)
                            for j in jobs for s in SIDES for f in j["sides"][s]["failed"]]}


# ---------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------

NA = "n/a"


def fmt_num(v, nd=None):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return NA
    if nd is not None:
        return "%.*f" % (nd, v)
    a = abs(v)
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    return "%.2f" % v


def fmt_pct(v):
    return NA if v is None else "%+.1f" % v


def fmt_ci(d):
    if d.get("ci_lo") is None:
        return NA
    return "[%+.1f, %+.1f]" % (d["ci_lo"], d["ci_hi"])


def labels(cfg):
    a = (cfg.get("a") or {}).get("label") or "A"
    b = (cfg.get("b") or {}).get("label") or "B"
    return a, b


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


def seed_table(summary):
    la, lb = summary_labels(summary)
    header = ["workload", "%s MiB/s" % la, "%s MiB/s" % lb, "%s IOPS" % la,
              "%s IOPS" % lb, "Δ %", "95 % CI", "sig", "n", "notes"]
    rows = []
    for j in summary["jobs"]:
        a, b, d = j["sides"]["A"], j["sides"]["B"], j["delta"]
        notes = []
        for s in SIDES:
            if j["sides"][s]["n_failed"]:
                notes.append("%d failed on %s" % (j["sides"][s]["n_failed"], s))
        rows.append([j["name"], fmt_num(a["bw_mib_s"]), fmt_num(b["bw_mib_s"]),
                     fmt_num(a["iops_mean"]), fmt_num(b["iops_mean"]),
                     fmt_pct(d["delta_pct"]), fmt_ci(d), d["mark"] or "",
                     "%d/%d" % (a["n"], b["n"]), "; ".join(notes)])
    return md_table(header, rows)


def summary_labels(summary):
    la, lb = labels(summary.get("config", {}))
    if summary["jobs"]:
        la = summary["jobs"][0]["sides"]["A"]["label"] or la
        lb = summary["jobs"][0]["sides"]["B"]["label"] or lb
    return la, lb


def legend(summary):
    cfg = summary.get("config", {})
    la, lb = summary_labels(summary)
    reps = summary.get("reps")
    return ("A = %s, B = %s; %s A/B, %s rep%s per side%s. %s" % (
        la, lb, cfg.get("ab", "?"), reps if reps is not None else "?",
        "" if reps == 1 else "s", " (A/A control)" if cfg.get("aa") else "", CI_METHOD))


def throughput_table(summary):
    header = ["workload", "side", "fio IOPS", "daemon READ/s", "daemon WRITE/s",
              "other ops", "daemon errors", "daemon R+W / fio I/Os", "req/kick",
              "notify sent", "notify suppr.", "pool busy/threads"]
    rows = []
    for j in summary["jobs"]:
        for s in SIDES:
            side = j["sides"][s]
            dm = side["daemon"]
            lab = "%s (%s)" % (s, side["label"])
            if dm is None:
                rows.append([j["name"], lab, fmt_num(side["iops_mean"])] + [NA] * 9)
                continue
            rows.append([j["name"], lab, fmt_num(side["iops_mean"]),
                         fmt_num(dm["read_rps"]), fmt_num(dm["write_rps"]),
                         str(dm["other_count"]), str(dm["errors"]), fmt_num(dm["rw_per_fio_io"], 2),
                         fmt_num(dm["reqs_per_kick"], 2),
                         str(dm["notify_sent"]), str(dm["notify_suppressed"]),
                         "%s/%s" % (fmt_num(dm["pool_busy"], 1), fmt_num(dm["pool_threads"], 1))])
    return md_table(header, rows)


def latency_table(summary):
    header = ["workload", "side", "fio clat mean", "wait mean", "service mean",
              "complete mean", "total mean", "remainder", "fio clat p99",
              "wait p99", "service p99", "total p99"]
    rows = []
    for j in summary["jobs"]:
        for s in SIDES:
            side = j["sides"][s]
            dm = side["daemon"]
            lab = "%s (%s)" % (s, side["label"])
            if dm is None:
                rows.append([j["name"], lab, fmt_num(side["clat_mean_us"])] + [NA] * 5 +
                            [fmt_num(side["clat_p99_us"])] + [NA] * 3)
                continue
            ph = dm["phases"]
            rows.append([j["name"], lab, fmt_num(side["clat_mean_us"]),
                         fmt_num(ph["wait"]["mean_us"]), fmt_num(ph["service"]["mean_us"]),
                         fmt_num(ph["complete"]["mean_us"]), fmt_num(ph["total"]["mean_us"]),
                         fmt_num(dm["remainder_us"]), fmt_num(side["clat_p99_us"]),
                         fmt_num(ph["wait"].get("p99_us")), fmt_num(ph["service"].get("p99_us")),
                         fmt_num(ph["total"].get("p99_us"))])
    return md_table(header, rows)


def _flat(d, prefix=""):
    out = {}
    for k, v in (d or {}).items():
        key = prefix + str(k)
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def config_md(cfg):
    lines = []
    la, lb = labels(cfg)
    for s, lab in (("a", la), ("b", lb)):
        side = cfg.get(s) or {}
        lines.append("- %s: **%s** (mode `%s`), daemon: `%s`" % (
            s.upper(), lab, side.get("mode", NA), side.get("daemon", NA)))
    lines.append("- A/B: %s, order %s, reps %s, A/A control: %s" % (
        cfg.get("ab", NA), cfg.get("order", NA), cfg.get("reps", NA),
        "yes" if cfg.get("aa") else "no"))
    share = cfg.get("share") or {}
    lines.append("- profile: %s; share: %s `%s`; O_DIRECT: %s; allow_direct_io: %s" % (
        cfg.get("profile", NA), share.get("kind", NA), share.get("path", NA),
        "yes" if cfg.get("direct") else "no", "yes" if cfg.get("allow_direct_io") else "no"))
    fio = cfg.get("fio") or {}
    lines.append("- fio: %s, size %s, runtime %s s, ramp %s s, bs %s, iodepth %s" % (
        fio.get("version", NA), fio.get("size", NA), fio.get("runtime_s", NA),
        fio.get("ramp_s", NA), fio.get("bs", NA), fio.get("iodepth", NA)))
    g = cfg.get("guest") or {}
    lines.append("- guest: kernel %s, %s vCPUs, memory %s, %s request queue(s) of %s, accel %s, cpu %s" % (
        g.get("kernel", NA), g.get("vcpus", NA), g.get("mem", NA), g.get("queues", NA),
        g.get("queue_size", NA), g.get("accel", NA), g.get("cpu", NA)))
    lines.append("- QEMU: %s" % cfg.get("qemu", NA))
    h = cfg.get("host") or {}
    lines.append("- host: %s, kernel %s, %s CPUs" % (h.get("hostname", NA), h.get("kernel", NA), h.get("cpus", NA)))
    lines.append("- run: %s → %s; command: `%s`" % (cfg.get("started", NA), cfg.get("finished", NA),
                                                    cfg.get("command", NA)))
    known = {"a", "b", "ab", "order", "reps", "aa", "share", "profile", "direct",
             "allow_direct_io", "fio", "guest", "qemu", "host", "started", "finished", "command"}
    extra = {k: v for k, v in _flat({k: v for k, v in cfg.items() if k not in known}).items()}
    for k in sorted(extra):
        lines.append("- %s: %s" % (k, json.dumps(extra[k]) if not isinstance(extra[k], str) else extra[k]))
    return "\n".join(lines)


def report_md(summary, plot_files, plot_note):
    cfg = summary["config"]
    la, lb = summary_labels(summary)
    out = ["# vfs-bench: %s vs %s (%s, %s share)" % (la, lb, cfg.get("profile", "?"),
                                                     (cfg.get("share") or {}).get("kind", "?")),
           "", "## Configuration", "", config_md(cfg), "",
           "## Results", "", seed_table(summary), "", legend(summary), ""]
    if summary["failed_runs"]:
        out += ["### Failed runs (left out of the statistics)", ""]
        for f in summary["failed_runs"]:
            out.append("- %s %s rep %s (seq %s): %s" % (f["job"], f["side"], f["rep"], f["seq"], f["error"]))
        out.append("")
    if summary["warnings"]:
        out += ["### Warnings", ""] + ["- " + w for w in summary["warnings"]] + [""]
    out += ["## Why (from the daemon's counters)", ""]
    out += ["- **%s**: %s" % (j["name"], j["why"]) for j in summary["jobs"]]
    out += ["", "## fio vs the daemon: throughput", "",
            "Daemon figures are the counters' deltas over each run's snapshot window "
            "(request queues, all modes), pooled over the good runs; req/s = Δcount / "
            "fio's runtime of the run (`fio_runtime_s`; Δtime of the snapshots when absent: "
            "the snapshots also bracket fio's start-up and exit). `daemon R+W / fio I/Os` compares counts (1.00: every fio I/O became one "
            "request). Pool figures are the snapshot values after the run. n/a: no counters "
            "(e.g. a daemon without control socket).", "",
            throughput_table(summary), "",
            "## fio vs the daemon: latency (µs)", "",
            "fio clat mean/p99 are I/O-weighted over fio jobs and directions (p99: a weighted "
            "mean of the jobs' p99), averaged over runs. Daemon phases are READ+WRITE only, "
            "from histogram deltas pooled over runs; p99 = the upper end of the bucket holding "
            "rank ⌈0.99·count⌉ (an interval's max cannot be subtracted, so no cap by max). remainder = fio clat mean − "
            "daemon total mean: time in the guest and the transport (with iodepth > 1 it "
            "includes queueing in the guest).", "",
            latency_table(summary), ""]
    out += ["## Plots", ""]
    if plot_files:
        for f in plot_files:
            if f.endswith(".png"):
                out.append("![%s](%s)" % (os.path.splitext(f)[0], f))
    if plot_note:
        out.append(plot_note)
    out.append("")
    return "\n".join(out)


CSV_FIELDS = ["row", "job", "side", "label", "mode", "n", "n_failed",
              "iops_mean", "iops_sd", "bw_mib_s", "clat_mean_us", "clat_p99_us",
              "daemon_read_rps", "daemon_write_rps", "daemon_rw_per_fio_io",
              "wait_mean_us", "service_mean_us", "complete_mean_us", "total_mean_us",
              "wait_p99_us", "service_p99_us", "total_p99_us", "remainder_us",
              "reqs_per_kick", "notify_sent", "notify_suppressed", "pool_busy", "pool_threads",
              "iops_a", "iops_b", "delta_pct", "ci_lo", "ci_hi", "df", "significant", "mark"]


def csv_rows(summary):
    rows = []
    for j in summary["jobs"]:
        for s in SIDES:
            side = j["sides"][s]
            r = {"row": "side", "job": j["name"], "side": s, "label": side["label"],
                 "mode": side["mode"], "n": side["n"], "n_failed": side["n_failed"],
                 "iops_mean": side["iops_mean"], "iops_sd": side["iops_sd"],
                 "bw_mib_s": side["bw_mib_s"], "clat_mean_us": side["clat_mean_us"],
                 "clat_p99_us": side["clat_p99_us"]}
            dm = side["daemon"]
            if dm:
                r.update(daemon_read_rps=dm["read_rps"], daemon_write_rps=dm["write_rps"],
                         daemon_rw_per_fio_io=dm["rw_per_fio_io"],
                         remainder_us=dm["remainder_us"], reqs_per_kick=dm["reqs_per_kick"],
                         notify_sent=dm["notify_sent"], notify_suppressed=dm["notify_suppressed"],
                         pool_busy=dm["pool_busy"], pool_threads=dm["pool_threads"])
                for p in st.PHASES:
                    r["%s_mean_us" % p] = dm["phases"][p]["mean_us"]
                    if "%s_p99_us" % p in CSV_FIELDS:
                        r["%s_p99_us" % p] = dm["phases"][p].get("p99_us")
            rows.append(r)
        d = j["delta"]
        rows.append({"row": "delta", "job": j["name"], "n": "%d/%d" % (d["n_a"], d["n_b"]),
                     "iops_a": d["mean_a"], "iops_b": d["mean_b"], "delta_pct": d["delta_pct"],
                     "ci_lo": d["ci_lo"], "ci_hi": d["ci_hi"], "df": d["df"],
                     "significant": d["significant"], "mark": d["mark"]})
    return rows


def write_csv(path, summary):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in csv_rows(summary):
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------

def render(results_dir, latency_job=None):
    """Render results_dir/raw.json into report.md, results.csv, summary.json
    and plots in the same folder; return the seed-style table (Markdown)."""
    raw = load_raw(results_dir)
    summary = analyse(raw)
    from . import plots
    plot_files, plot_note = plots.write_plots(summary, results_dir, latency_job)
    summary["plots"] = plot_files
    summary["plots_note"] = plot_note
    with open(os.path.join(results_dir, "report.md"), "w") as f:
        f.write(report_md(summary, plot_files, plot_note))
    write_csv(os.path.join(results_dir, "results.csv"), summary)
    with open(os.path.join(results_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=False)
        f.write("\n")
    text = seed_table(summary) + "\n\n" + legend(summary)
    if summary["failed_runs"]:
        text += "\nFailed runs: %d (see report.md)." % len(summary["failed_runs"])
    if plot_note:
        text += "\n" + plot_note
    return text + "\n"


def _describe(raw, d):
    cfg = raw.get("config", {})
    la, lb = labels(cfg)
    return "%s: %s vs %s; %s, %s share, %s A/B, %s reps" % (
        d, la, lb, cfg.get("profile", "?"), (cfg.get("share") or {}).get("kind", "?"),
        cfg.get("ab", "?"), cfg.get("reps", "?"))


IGNORED_CONFIG = ("started", "finished", "command")


def compare(dir1, dir2):
    """Two result folders side by side, per job present in both: each
    folder's A and B IOPS, Δ % with CI, and folder 2 against folder 1."""
    raw1, raw2 = load_raw(dir1), load_raw(dir2)
    s1, s2 = analyse(raw1), analyse(raw2)
    j1 = {j["name"]: j for j in s1["jobs"]}
    j2 = {j["name"]: j for j in s2["jobs"]}
    common = [n for n in j1 if n in j2]
    out = ["# vfs-bench compare", "", "- 1 = " + _describe(raw1, dir1),
           "- 2 = " + _describe(raw2, dir2)]
    f1, f2 = _flat(s1["config"]), _flat(s2["config"])
    diffs = [k for k in sorted(set(f1) | set(f2))
             if k not in IGNORED_CONFIG and f1.get(k) != f2.get(k)]
    if diffs:
        out.append("- configuration differences (1 → 2):")
        out += ["  - %s: %s → %s" % (k, json.dumps(f1.get(k)), json.dumps(f2.get(k)))
                for k in diffs]
    out.append("")
    header = ["workload", "1: A IOPS", "1: B IOPS", "1: Δ %", "1: 95 % CI",
              "2: A IOPS", "2: B IOPS", "2: Δ %", "2: 95 % CI",
              "A 2 vs 1 %", "B 2 vs 1 %", "Δ 2 − 1 (pp)"]
    rows = []
    for n in common:
        a, b = j1[n], j2[n]
        da, db = a["delta"], b["delta"]
        va = st.delta_pct(a["sides"]["A"]["iops"], b["sides"]["A"]["iops"], CONF)
        vb = st.delta_pct(a["sides"]["B"]["iops"], b["sides"]["B"]["iops"], CONF)
        dd = (db["delta_pct"] - da["delta_pct"]
              if da["delta_pct"] is not None and db["delta_pct"] is not None else None)
        rows.append([n,
                     fmt_num(a["sides"]["A"]["iops_mean"]), fmt_num(a["sides"]["B"]["iops_mean"]),
                     (fmt_pct(da["delta_pct"]) + " " + da["mark"]).strip(), fmt_ci(da),
                     fmt_num(b["sides"]["A"]["iops_mean"]), fmt_num(b["sides"]["B"]["iops_mean"]),
                     (fmt_pct(db["delta_pct"]) + " " + db["mark"]).strip(), fmt_ci(db),
                     (fmt_pct(va["delta_pct"]) + " " + va["mark"]).strip(),
                     (fmt_pct(vb["delta_pct"]) + " " + vb["mark"]).strip(),
                     fmt_pct(dd)])
    out.append(md_table(header, rows) if rows else "(no job in both folders)")
    out.append("")
    out.append("`A 2 vs 1 %` = (mean IOPS of A in 2 − in 1) / in 1, same Welch interval and "
               "marks as Δ %. `Δ 2 − 1` = difference of the two Δ % in percentage points. "
               + CI_METHOD)
    only1 = [n for n in j1 if n not in j2]
    only2 = [n for n in j2 if n not in j1]
    if only1:
        out.append("\nOnly in 1: " + ", ".join(only1))
    if only2:
        out.append("\nOnly in 2: " + ", ".join(only2))
    return "\n".join(out) + "\n"


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    argv = list(argv)
    # tolerate a program name in front (main(sys.argv))
    if len(argv) > 1 and argv[0] not in ("render", "compare") and argv[1] in ("render", "compare"):
        argv = argv[1:]
    ap = argparse.ArgumentParser(prog="vfsbench.report", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="render DIR/raw.json into report.md, results.csv, summary.json, plots")
    r.add_argument("dir")
    r.add_argument("--latency-job", help="job whose latency histograms are plotted (default: the first)")
    c = sub.add_parser("compare", help="two result folders side by side")
    c.add_argument("dir1")
    c.add_argument("dir2")
    c.add_argument("-o", "--output", help="also write the comparison to this file")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "render":
            sys.stdout.write(render(args.dir, args.latency_job))
            sys.stdout.write("report: %s\n" % os.path.join(args.dir, "report.md"))
        else:
            text = compare(args.dir1, args.dir2)
            sys.stdout.write(text)
            if args.output:
                with open(args.output, "w") as f:
                    f.write(text)
    except (OSError, ValueError) as e:
        sys.stderr.write("vfsbench.report: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
