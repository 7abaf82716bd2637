#!/usr/bin/env python3
"""bench-quick: the quick bench profile end to end in a real guest (live
inline vs pool:16 on our daemon, one rep per side), the results folder's
structure, and the daemon's READ/WRITE counts against fio's I/O counts for
O_DIRECT psync jobs (exact).

usage: test_bench_quick.py --build-dir DIR [--image-dir DIR] [--keep] [--reps N]

Two bench invocations (two boots):
  1. `vfs-bench run --profile quick --reps N`: raw.json well formed
     (FORMAT.md), every run has fio output and both counter snapshots, the
     runs alternate A/B in ABBA order, each side's READ/WRITE requests ran in
     its mode (inline for A, pool for B, from the snapshot deltas), report.md
     has the table with every job.
  2. `vfs-bench run --direct --jobs randread-psync-single,randwrite-psync-single`:
     with direct=1 and 4K psync every fio I/O is exactly one FUSE READ or
     WRITE, so the snapshot delta must equal fio's total_ios, to the request.

Exit: 0 pass, 1 fail, 77 skip (not root, no QEMU or vhost-user-fs-pci, daemon
not built, guest image cannot be built).  Timing never decides the result.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
VFS_BENCH = os.path.join(REPO, "bench", "vfs-bench")
sys.path.insert(0, os.path.join(REPO, "bench"))
from vfsbench import jobs  # noqa: E402

failures = []
ntest = 0


def ok(cond, what, detail=""):
    global ntest
    ntest += 1
    if cond:
        print("ok %d - %s" % (ntest, what))
    else:
        print("not ok %d - %s%s" % (ntest, what, (": " + detail) if detail else ""))
        failures.append(what)
    sys.stdout.flush()
    return cond


def skip(why):
    print("1..0 # SKIP " + why)
    sys.exit(77)


def op_delta(run, opcode, mode=None):
    def count(snap):
        return sum(o["count"] for q in snap["queues"] for o in q.get("ops", [])
                   if o["opcode"] == opcode and (mode is None or o["mode"] == mode))
    return count(run["stats_after"]) - count(run["stats_before"])


def fio_ios(run, direction):
    return sum(j[direction]["total_ios"] for j in run["fio"]["jobs"])


def bench(args, out, extra, timeout):
    cmd = [VFS_BENCH, "run", "--build-dir", args.build_dir, "--out", out] + extra
    if args.image_dir:
        cmd += ["--image-dir", args.image_dir]
    print("# " + " ".join(cmd), flush=True)
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
        rc, text = p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        rc, text = None, (e.stdout or b"").decode("utf-8", "replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    for line in text.splitlines():
        print("#   " + line)
    print("# %.0f s" % (time.monotonic() - t0), flush=True)
    return rc, text


def load_raw(out):
    try:
        with open(os.path.join(out, "raw.json")) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        ok(False, "raw.json readable in %s" % out, str(e))
        return None


def check_common(raw, njobs_expected, reps):
    ok(raw.get("format") == "vfs-bench-raw" and raw.get("version") == 1, "raw.json format and version")
    cfg = raw.get("config", {})
    for k in ("ab", "a", "b", "aa", "profile", "reps", "order", "share", "direct", "allow_direct_io",
              "fio", "guest", "qemu", "host", "started", "finished", "command"):
        ok(k in cfg, "config has %s" % k)
    ok(cfg.get("ab") == "live", "live A/B")
    ok((cfg.get("guest") or {}).get("kernel"), "guest kernel recorded", str(cfg.get("guest")))
    ok(((cfg.get("fio") or {}).get("version") or "").startswith("fio-"), "fio version recorded")
    runs = raw.get("runs", [])
    ok(len(raw.get("jobs", [])) == njobs_expected, "%d jobs listed" % njobs_expected, str(len(raw.get("jobs", []))))
    ok(len(runs) == njobs_expected * 2 * reps, "%d runs" % (njobs_expected * 2 * reps), str(len(runs)))
    ok([r["seq"] for r in runs] == list(range(len(runs))), "seq numbers the runs in order")
    good = [r for r in runs if not r.get("error") and r.get("fio") and r["fio"].get("jobs")]
    ok(len(good) == len(runs), "every run has fio output and no error",
       "; ".join("%s/%s: %s" % (r["job"], r["side"], r.get("error")) for r in runs if r not in good))
    snaps = [r for r in runs if (r.get("stats_before") or {}).get("schema") == "virtiofsd-stats"
             and (r.get("stats_after") or {}).get("schema") == "virtiofsd-stats"]
    ok(len(snaps) == len(runs), "every run has both counter snapshots")
    # ABBA per job: A B (B A) ...
    by_job = {}
    for r in runs:
        by_job.setdefault(r["job"], []).append(r["side"])
    want = []
    for i in range(reps):
        want += ["A", "B"] if i % 2 == 0 else ["B", "A"]
    ok(all(v == want for v in by_job.values()), "runs of each job in ABBA order", str(by_job))
    return good if len(snaps) == len(runs) else []


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--image-dir", default=os.environ.get("VFS_GUEST_CACHE"))
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    args.build_dir = os.path.abspath(args.build_dir)

    if os.geteuid() != 0:
        skip("needs root (daemon sandbox, QEMU, drop_caches)")
    if not shutil.which("qemu-system-x86_64"):
        skip("qemu-system-x86_64 not installed")
    h = subprocess.run(["qemu-system-x86_64", "-device", "help"], capture_output=True, text=True)
    if '"vhost-user-fs-pci"' not in h.stdout:
        skip("this QEMU has no vhost-user-fs-pci device")
    if not shutil.which("fio"):
        skip("fio not installed (the guest runs the host's fio)")
    daemon = os.path.join(args.build_dir, "virtiofsd", "virtiofsd")
    if not os.access(daemon, os.X_OK):
        skip("daemon %s not built" % daemon)
    bi = [os.path.join(REPO, "tests", "guest", "build-image.sh")]
    if args.image_dir:
        bi.append(args.image_dir)
    b = subprocess.run(bi, capture_output=True, text=True)
    if b.returncode != 0:
        print("\n".join("# " + l for l in (b.stdout + b.stderr).splitlines()[-10:]))
        skip("cannot build the guest image")

    base = tempfile.mkdtemp(prefix="vfs-bench-test.", dir=os.environ.get("VFS_TEST_BASE", "/var/tmp"))
    t0 = time.monotonic()

    # --- 1. the quick profile, live inline vs pool:16 -------------------------
    out1 = os.path.join(base, "quick")
    rc, text = bench(args, out1, ["--profile", "quick", "--reps", str(args.reps)], timeout=420)
    ok(rc == 0, "vfs-bench run --profile quick exits 0", "rc %s" % rc)
    raw = load_raw(out1) if os.path.exists(os.path.join(out1, "raw.json")) else None
    quick_jobs = list(jobs.PROFILES["quick"]["jobs"])
    if ok(raw is not None, "quick: raw.json written"):
        ok([j["name"] for j in raw["jobs"]] == quick_jobs, "quick: the profile's jobs",
           str([j["name"] for j in raw["jobs"]]))
        ok(raw["config"]["a"]["mode"] == "inline" and raw["config"]["b"]["mode"] == "pool:16",
           "quick: A inline, B pool:16 by default")
        good = check_common(raw, len(quick_jobs), args.reps)
        # each side's requests ran in its mode: the live switch really switched
        for r in good:
            op = "WRITE" if "write" in r["job"] else "READ"
            want = "inline" if r["side"] == "A" else "pool"
            other = "pool" if want == "inline" else "inline"
            n_want, n_other = op_delta(r, op, want), op_delta(r, op, other)
            ok(n_want > 0 and n_other == 0,
               "quick: %s side %s: %s requests ran %s" % (r["job"], r["side"], op, want),
               "%s=%d %s=%d" % (want, n_want, other, n_other))
        rep = os.path.join(out1, "report.md")
        if ok(os.path.isfile(rep), "quick: report.md written"):
            with open(rep) as f:
                md = f.read()
            ok("| workload" in md, "quick: report.md has the workload table")
            missing = [j for j in quick_jobs if j not in md]
            ok(not missing, "quick: every job in report.md", ", ".join(missing))
        ok("| workload" in text, "quick: the table is printed")

    # --- 2. O_DIRECT psync: daemon READ/WRITE == fio's I/Os, exactly ----------
    out2 = os.path.join(base, "direct")
    djobs = ["randread-psync-single", "randwrite-psync-single"]
    rc, text = bench(args, out2, ["--profile", "quick", "--direct", "--reps", "1",
                                  "--jobs", ",".join(djobs)], timeout=300)
    ok(rc == 0, "vfs-bench run --direct exits 0", "rc %s" % rc)
    raw = load_raw(out2) if os.path.exists(os.path.join(out2, "raw.json")) else None
    if ok(raw is not None, "direct: raw.json written"):
        ok(raw["config"]["direct"] is True, "direct: config.direct recorded")
        good = check_common(raw, len(djobs), 1)
        for r in good:
            ok(r.get("direct") is True and "direct=${VFSB_DIRECT}" in
               next(j["jobfile"] for j in raw["jobs"] if j["name"] == r["job"])
               and r["fio_env"]["VFSB_DIRECT"] == "1", "direct: %s %s ran with direct=1" % (r["job"], r["side"]))
            if "write" in r["job"]:
                op, d = "WRITE", "write"
            else:
                op, d = "READ", "read"
            n_fio, n_daemon = fio_ios(r, d), op_delta(r, op)
            ok(n_fio > 0 and n_daemon == n_fio,
               "direct: %s side %s: daemon %s count %d == fio total_ios %d"
               % (r["job"], r["side"], op, n_daemon, n_fio))
            other_op, other_d = ("READ", "read") if op == "WRITE" else ("WRITE", "write")
            ok(op_delta(r, other_op) == fio_ios(r, other_d) == 0,
               "direct: %s side %s: no %s on either side" % (r["job"], r["side"], other_op))

    print("1..%d" % ntest)
    print("# total %.0f s" % (time.monotonic() - t0))
    if failures or args.keep:
        print("# results kept in %s" % base)
    else:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
