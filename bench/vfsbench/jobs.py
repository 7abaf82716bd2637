"""The fio job matrix and the bench profiles.

The seed's 30 jobs: {read, randread, write, randwrite, randrw 75/25} x
{psync, mmap, libaio} x {single, multi = 4 jobs on 4 files}, bs 4K,
iodepth 16.  One job file per job lives in bench/jobs/NAME.fio; sizes and
runtimes are not in the files but come from the profile through fio's
${VAR} environment substitution (VFSB_DIR, VFSB_SIZE, VFSB_RUNTIME,
VFSB_RAMP, VFSB_DIRECT), so one set of files serves every profile.

`python3 -m vfsbench.jobs --write` (from bench/) regenerates the files;
`--check` verifies that they match this module.
"""
import fnmatch
import os
import re

RWS = ("read", "randread", "write", "randwrite", "randrw")
ENGINES = ("psync", "mmap", "libaio")
LAYOUTS = ("single", "multi")
MULTI_JOBS = 4
BS = "4k"
IODEPTH = 16
RWMIXREAD = 75
FILE_FORMAT = "f.%d"         # fio files in the share's bench directory

ALL_JOBS = tuple("%s-%s-%s" % (rw, e, lay) for rw in RWS for e in ENGINES for lay in LAYOUTS)

JOBS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "jobs")

# Profiles.  size is per file (a multi job uses 4 files of that size);
# runtime and ramp in seconds.  Runs are time-based only: fio loops over
# the file until the runtime ends (the seed's runs were capped by size too).
PROFILES = {
    # CI and first contact: a representative subset, small files, short
    # runs; the whole live A/B with boot fits in about 2-3 minutes under TCG.
    "quick": {
        "size": "64M", "runtime_s": 3, "ramp_s": 0, "reps": 2,
        "jobs": ("randread-psync-single", "randread-libaio-single",
                 "randwrite-psync-single", "randwrite-libaio-single",
                 "read-psync-single", "randread-psync-multi"),
        "about": "6 representative jobs, 4 x 64 MiB files, 3 s runs, 2 reps",
    },
    # All 30 jobs, sized for a 2-core TCG machine (about 30 min live A/B).
    "standard": {
        "size": "256M", "runtime_s": 5, "ramp_s": 0, "reps": 3,
        "jobs": ALL_JOBS,
        "about": "all 30 jobs, 4 x 256 MiB files, 5 s runs, 3 reps",
    },
    # As published: 4 x 4 GiB files, 20 s runs, 3 runs per configuration.
    "seed": {
        "size": "4G", "runtime_s": 20, "ramp_s": 0, "reps": 3,
        "jobs": ALL_JOBS,
        "about": "all 30 jobs, 4 x 4 GiB files, 20 s runs, 3 reps (the seed's sizes)",
    },
}

# Names people use for the sequential jobs (the seed says seqread/seqwrite).
ALIASES = {"seqread": "read", "seqwrite": "write"}

_NAME_RE = re.compile(r"^(%s)-(%s)-(%s)$" % ("|".join(RWS), "|".join(ENGINES), "|".join(LAYOUTS)))


def parse_size(s):
    """'64M' -> bytes (fio's binary units: k/K=1024, M, G, T)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgGtT]?)(i?[bB])?\s*", str(s))
    if not m:
        raise ValueError("bad size %r (want e.g. 64M, 1G)" % (s,))
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2).lower()]
    n = int(m.group(1)) * mult
    if n < 1 << 20:
        raise ValueError("size %r is below 1M" % (s,))
    return n


def job_info(name):
    m = _NAME_RE.match(name)
    if not m:
        raise ValueError("not a job name: %r" % (name,))
    rw, engine, layout = m.groups()
    multi = layout == "multi"
    return {
        "name": name, "rw": rw, "engine": engine, "layout": layout,
        "numjobs": MULTI_JOBS if multi else 1, "nrfiles": MULTI_JOBS if multi else 1,
        "bs": BS, "iodepth": IODEPTH if engine == "libaio" else 1,
        "rwmixread": RWMIXREAD if rw == "randrw" else None,
        # libaio is always O_DIRECT (without it libaio completes each I/O
        # synchronously and depth 16 means nothing); mmap never is.
        "direct": "always" if engine == "libaio" else ("never" if engine == "mmap" else "option"),
    }


def select(patterns):
    """Comma/space separated job names or shell globs (seqread/seqwrite
    accepted) -> job names in matrix order.  Raises ValueError when a
    pattern matches nothing."""
    pats = [p for p in re.split(r"[,\s]+", patterns or "") if p]
    if not pats:
        raise ValueError("empty job pattern")
    chosen = set()
    for p in pats:
        for a, b in ALIASES.items():
            p = p.replace(a, b)
        hit = [j for j in ALL_JOBS if fnmatch.fnmatchcase(j, p)]
        if not hit and "-" not in p and "*" not in p:
            hit = [j for j in ALL_JOBS if fnmatch.fnmatchcase(j, p + "-*")]
        if not hit:
            raise ValueError("job pattern %r matches none of the %d jobs (e.g. %s)"
                             % (p, len(ALL_JOBS), ", ".join(ALL_JOBS[:3])))
        chosen.update(hit)
    return [j for j in ALL_JOBS if j in chosen]


def render(name):
    """The job file text for NAME (what bench/jobs/NAME.fio holds)."""
    j = job_info(name)
    what = {"read": "sequential reads", "randread": "random reads", "write": "sequential writes",
            "randwrite": "random writes", "randrw": "random reads and writes, 75/25"}[j["rw"]]
    depth = {"psync": "queue depth 1", "mmap": "queue depth 1 (page faults)",
             "libaio": "queue depth up to %d, O_DIRECT" % IODEPTH}[j["engine"]]
    who = ("%d jobs, one file each" % MULTI_JOBS) if j["layout"] == "multi" else "one job on one file"
    direct = {"always": "1", "never": "0", "option": "${VFSB_DIRECT}"}[j["direct"]]
    lines = [
        "; vfs-bench job %s (generated by bench/vfsbench/jobs.py)" % name,
        "; 4K %s, %s, %s; %s." % (what, j["engine"], depth, who),
        "; The runner sets VFSB_* from the profile (fio substitutes ${VAR} from",
        "; its environment) and lays the files out before the first run.",
        "[global]",
        "directory=${VFSB_DIR}",
        "size=${VFSB_SIZE}",
        "time_based=1",
        "runtime=${VFSB_RUNTIME}",
        "ramp_time=${VFSB_RAMP}",
        "rw=%s" % j["rw"],
    ]
    if j["rwmixread"]:
        lines.append("rwmixread=%d" % j["rwmixread"])
    lines += [
        "bs=%s" % BS,
        "ioengine=%s" % j["engine"],
        "iodepth=%d" % IODEPTH,
        "direct=%s" % direct,
        "invalidate=1",
        "",
    ]
    for i in range(j["numjobs"]):
        lines += ["[%s]" % name, "filename=" + FILE_FORMAT % i, ""]
    return "\n".join(lines)


def path(name):
    return os.path.join(JOBS_DIR, name + ".fio")


def load(name):
    """The job file of NAME from bench/jobs (falls back to the generated
    text if the file is missing)."""
    job_info(name)
    try:
        with open(path(name)) as f:
            return f.read()
    except FileNotFoundError:
        return render(name)


def _main(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="vfsbench.jobs", description="write or check bench/jobs/*.fio")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", action="store_true")
    g.add_argument("--check", action="store_true")
    a = ap.parse_args(argv)
    bad = 0
    for name in ALL_JOBS:
        text = render(name)
        if a.write:
            os.makedirs(JOBS_DIR, exist_ok=True)
            with open(path(name), "w") as f:
                f.write(text)
        else:
            try:
                with open(path(name)) as f:
                    if f.read() != text:
                        print("differs: " + path(name))
                        bad += 1
            except FileNotFoundError:
                print("missing: " + path(name))
                bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    import sys
    sys.exit(_main(sys.argv[1:]))
