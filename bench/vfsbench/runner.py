"""vfs-bench run: the seed's fio matrix in a guest, A/B by the daemon's live
switch (one daemon, one boot) or by two daemon binaries (one boot per run
block), every run bracketed by counter snapshots, raw results in raw.json
(FORMAT.md).  Standard library only.
"""
import datetime
import fcntl
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from . import agent, ctl, jobs
from .guest import Guest, GuestError, REPO, RUN_GUEST

UPSTREAM = "/usr/lib/qemu/virtiofsd"
DEFAULT_DAEMON_OPTS = ["-o", "cache=auto", "-o", "xattr"]      # the seed's options
FILES_DIR = "vfsbench-files"         # the fio files, inside the share
GUEST_MOUNT = "/mnt"
BOOT_ESTIMATE_S = 40                 # TCG boot to the agent's hello, loaded machine
RUN_OVERHEAD_S = 5                   # fio start-up over 9p under TCG, drop_caches, snapshots


class UsageError(Exception):
    pass


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def say(msg):
    print("vfs-bench: " + msg, flush=True)


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------

RUN_EPILOG = """\
modes (--a/--b, live A/B): inline | pool:N (N threads per queue, 1..1024) |
  pool:N:batch | pool:N:normal (also the pool threads' policy, `pool sched`;
  plain pool:N leaves it as the daemon has it) |
  auto | auto:N (pool size) | auto:N:slowUS (also auto's threshold in us,
  `auto slow`; plain auto/auto:N leaves it as the daemon has it)

live A/B (default): one daemon with --control-socket, one boot; for every job
  the runs alternate A B B A ... (--reps runs per side), each mode applied with
  the control socket right before its run.
binary A/B (--daemon-a/--daemon-b): each side's daemon in its own boots,
  interleaved A B B A at boot granularity (each boot runs every job once).
  The mode is part of each command line (--thread-pool-size=N).  Debian's
  upstream daemon in pool mode gets MALLOC_ARENA_MAX=8 in its environment
  (its own seccomp filter kills it otherwise); the output says so.

Every run: guest caches dropped (sync; echo 3 > drop_caches), counter snapshot,
fio --output-format=json, counter snapshot.  Results: OUT/raw.json (rewritten
after every run), then report.md, results.csv, summary.json and plots from
vfsbench.report.  The folder format: bench/vfsbench/FORMAT.md.

examples:
  bench/vfs-bench run                                  # quick, inline vs pool:16, tmpfs
  bench/vfs-bench run --profile standard --share disk
  bench/vfs-bench run --aa --a pool:16 --jobs 'randread-*'
  bench/vfs-bench run --daemon-a 'build/virtiofsd/virtiofsd --thread-pool-size=0' \\
                      --daemon-b '/usr/lib/qemu/virtiofsd --thread-pool-size=0'
"""


def add_run_args(p):
    g = p.add_argument_group("what to run")
    g.add_argument("--profile", default="quick", choices=list(jobs.PROFILES),
                   help="quick (default): %s; standard: %s; seed: %s" % (
                       jobs.PROFILES["quick"]["about"], jobs.PROFILES["standard"]["about"],
                       jobs.PROFILES["seed"]["about"]))
    g.add_argument("--jobs", metavar="PATTERN",
                   help="jobs to run instead of the profile's: names or globs, comma separated, "
                        "from the 30-job matrix RW-ENGINE-LAYOUT (RW read|randread|write|randwrite|"
                        "randrw, seqread/seqwrite accepted; ENGINE psync|mmap|libaio; LAYOUT "
                        "single|multi), e.g. 'randread-*-single,randwrite-libaio-*'")
    g.add_argument("--reps", type=int, metavar="N", help="runs per side and job (profile default)")
    g.add_argument("--size", metavar="SIZE", help="size of each fio file, e.g. 256M (profile default)")
    g.add_argument("--runtime", type=int, metavar="SEC", help="seconds per fio run (profile default)")
    g.add_argument("--ramp", type=int, metavar="SEC", help="fio ramp_time, not measured (profile default 0)")
    g.add_argument("--direct", action="store_true",
                   help="fio direct=1 for the psync jobs too (libaio jobs are always O_DIRECT, "
                        "mmap jobs never)")
    g.add_argument("--share", default="tmpfs", metavar="tmpfs|disk|DIR",
                   help="exported directory: tmpfs (fresh dir in /dev/shm, default), disk (the ext4 "
                        "root, /var/tmp/vfs-bench-share) or an existing directory")
    g.add_argument("--prep", default="host", choices=("host", "guest"),
                   help="lay out the fio files from the host (default, fast) or from the guest "
                        "through the share (the agent's prep command)")
    g.add_argument("--drop-host-caches", action="store_true",
                   help="also drop the host's page cache before every run (echo 3 > "
                        "/proc/sys/vm/drop_caches on the host; affects the whole machine)")
    g.add_argument("--keep-share", action="store_true",
                   help="keep the fio files after the bench (tmpfs shares are removed otherwise)")

    g = p.add_argument_group("A/B")
    g.add_argument("--a", metavar="MODE", help="side A's mode (live A/B; default inline)")
    g.add_argument("--b", metavar="MODE", help="side B's mode (live A/B; default pool:16)")
    g.add_argument("--aa", action="store_true",
                   help="A/A control: B := A (same mode, or the same daemon command); shows the noise")
    g.add_argument("--daemon", metavar="CMD",
                   help="daemon command line for the live A/B (default: BUILD/virtiofsd/virtiofsd "
                        "-o cache=auto -o xattr); the runner adds --control-socket, --socket-path "
                        "and -o source; leading NAME=VALUE words set its environment")
    g.add_argument("--daemon-a", metavar="CMD", help="binary A/B: side A's daemon command line")
    g.add_argument("--daemon-b", metavar="CMD", help="binary A/B: side B's daemon command line")
    g.add_argument("--label-a", metavar="TEXT", help="side A's label (default from the mode/command)")
    g.add_argument("--label-b", metavar="TEXT", help="side B's label")
    g.add_argument("--build-dir", metavar="DIR",
                   help="meson build dir with our daemon (default: REPO/build)")
    g.add_argument("--allow-direct-io", action="store_true",
                   help="add -o allow_direct_io to every daemon (O_DIRECT reaches the host file; "
                        "tmpfs before Linux 6.6 refuses it)")

    g = p.add_argument_group("guest")
    g.add_argument("--accel", default="tcg,thread=multi",
                   help="QEMU accelerator (default tcg,thread=multi; kvm on a normal KVM host)")
    g.add_argument("--cpu", default="max", help="QEMU CPU model (default max; host with kvm)")
    g.add_argument("--vcpus", type=int, default=2, metavar="N", help="guest vCPUs (default 2)")
    g.add_argument("--mem", default="2G", metavar="SIZE", help="guest memory (default 2G)")
    g.add_argument("--queues", type=int, default=1, metavar="N",
                   help="num-request-queues (default 1; upstream supports only 1)")
    g.add_argument("--queue-size", type=int, default=128, metavar="N",
                   help="virtqueue size, power of two <= 1024 (default 128)")
    g.add_argument("--image-dir", metavar="DIR",
                   help="guest image cache (default $VFS_GUEST_CACHE or /var/tmp/vfs-guest-cache)")
    g.add_argument("--boot-timeout", type=int, default=300, metavar="SEC",
                   help="seconds from QEMU start to the agent's hello (default 300)")

    g = p.add_argument_group("output")
    g.add_argument("--out", metavar="DIR",
                   help="results folder (default bench/results/<UTC>-<profile>-<a>-vs-<b>/)")
    g.add_argument("--dry-run", action="store_true", help="print the plan and exit")


# --------------------------------------------------------------------------
# daemons
# --------------------------------------------------------------------------

_ENV_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


class Daemon:
    """One daemon command line: environment words, executable, arguments,
    and what it is (ours with a control socket, Debian's upstream, other)."""

    def __init__(self, cmd, allow_direct_io=False):
        try:
            words = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
        except ValueError as e:
            raise UsageError("cannot parse daemon command %r: %s" % (cmd, e))
        self.env = []
        while words and _ENV_WORD.match(words[0]):
            self.env.append(words.pop(0))
        if not words:
            raise UsageError("daemon command %r has no program" % (cmd,))
        exe = shutil.which(words[0]) if "/" not in words[0] else words[0]
        if not exe or not os.path.isfile(exe) or not os.access(exe, os.X_OK):
            raise UsageError("daemon %r not found or not executable%s" % (
                words[0], " (build it: meson setup build && ninja -C build)" if "build" in words[0] else ""))
        self.exe = os.path.abspath(exe)
        self.args = words[1:]
        for a in self.args:
            if a.startswith("--socket-path") or a.startswith("--fd") or re.match(r"^source=", a) \
                    or a.startswith("--control-socket"):
                raise UsageError("daemon command: leave %s out, the runner adds it" % a.split("=")[0])
        if allow_direct_io and "allow_direct_io" not in self.args:
            self.args += ["-o", "allow_direct_io"]
        self.notes = []
        envd = dict(os.environ)
        envd.update(dict(w.split("=", 1) for w in self.env))
        self.version = self._probe(["--version"], envd)
        help_text = self._probe(["--help"], envd)
        self.has_control = "--control-socket" in help_text
        self.is_upstream = ("virtiofsd version" in self.version and "instrumented" not in self.version)
        self.pool_size = self._pool_size()
        if self.is_upstream and self.pool_size > 0 and not any(w.startswith("MALLOC_ARENA_MAX=") for w in self.env):
            self.env.insert(0, "MALLOC_ARENA_MAX=8")
            self.notes.append("upstream virtiofsd in pool mode runs with MALLOC_ARENA_MAX=8 in its "
                              "environment (otherwise its own seccomp filter kills it on a new pool "
                              "thread's sched_getaffinity)")

    def _probe(self, args, env):
        try:
            p = subprocess.run([self.exe] + args, capture_output=True, text=True, timeout=20, env=env)
            return (p.stdout + p.stderr).strip()
        except (OSError, subprocess.SubprocessError) as e:
            return "(%s %s failed: %s)" % (self.exe, " ".join(args), e)

    def _pool_size(self):
        for i, a in enumerate(self.args):
            m = re.match(r"^--thread-pool-size(?:=(.*))?$", a)
            if m:
                v = m.group(1) if m.group(1) is not None else (self.args[i + 1] if i + 1 < len(self.args) else "")
                try:
                    return int(v)
                except ValueError:
                    raise UsageError("daemon command: bad --thread-pool-size %r" % v)
        return 0

    def mode(self):
        return "pool:%d" % self.pool_size if self.pool_size > 0 else "inline"

    def who(self):
        if self.is_upstream:
            return "upstream"
        if "instrumented" in self.version:
            return "ours"
        return os.path.basename(self.exe)

    def argv(self, control_socket=None):
        a = self.env + [self.exe] + self.args
        if control_socket:
            a.append("--control-socket=" + control_socket)
        return a

    def text(self, control_socket=None):
        return " ".join(shlex.quote(w) for w in self.argv(control_socket))


def default_daemon_cmd(build_dir):
    build_dir = build_dir or os.path.join(REPO, "build")
    exe = os.path.join(build_dir, "virtiofsd", "virtiofsd")
    if not os.access(exe, os.X_OK):
        raise UsageError("our daemon is not built: no %s (run `./run build`, or `meson setup build && "
                         "ninja -C build`, or give --build-dir / --daemon)" % exe)
    return [exe] + DEFAULT_DAEMON_OPTS


# --------------------------------------------------------------------------
# the plan
# --------------------------------------------------------------------------

def _sanitize(label):
    return re.sub(r"[^A-Za-z0-9._-]+", "", label.replace(":", "")) or "x"


def make_plan(args):
    """Validate the command line and work out everything the bench will do."""
    prof = dict(jobs.PROFILES[args.profile])
    try:
        job_names = jobs.select(args.jobs) if args.jobs else list(prof["jobs"])
        size = args.size or prof["size"]
        size_bytes = jobs.parse_size(size)
    except ValueError as e:
        raise UsageError(str(e))
    reps = args.reps if args.reps is not None else prof["reps"]
    runtime = args.runtime if args.runtime is not None else prof["runtime_s"]
    ramp = args.ramp if args.ramp is not None else prof["ramp_s"]
    if reps < 1:
        raise UsageError("--reps must be >= 1")
    if runtime < 1:
        raise UsageError("--runtime must be >= 1 s")
    if ramp < 0:
        raise UsageError("--ramp must be >= 0")
    for name in ("vcpus", "queues"):
        if getattr(args, name) < 1:
            raise UsageError("--%s must be >= 1" % name)
    qs = args.queue_size
    if qs < 2 or qs > 1024 or qs & (qs - 1):
        raise UsageError("--queue-size must be a power of two, 2..1024")
    if not re.fullmatch(r"[1-9][0-9]*[MG]?", args.mem):
        raise UsageError("--mem wants e.g. 2G or 2048M")

    share_kind = args.share if args.share in ("tmpfs", "disk") else "dir"
    if share_kind == "dir":
        if not os.path.isdir(args.share):
            raise UsageError("--share: %s is not a directory (want tmpfs, disk or a directory)" % args.share)
        share_base = os.path.realpath(args.share)
    elif share_kind == "disk":
        share_base = "/var/tmp/vfs-bench-share"
    else:
        share_base = "/dev/shm"

    binary = bool(args.daemon_a or args.daemon_b)
    if binary:
        if args.daemon:
            raise UsageError("give either --daemon (live A/B) or --daemon-a/--daemon-b (binary A/B)")
        if args.a or args.b:
            raise UsageError("binary A/B: the mode is part of each daemon command line "
                             "(--thread-pool-size=N); drop --a/--b")
        if not args.daemon_a:
            raise UsageError("binary A/B needs --daemon-a")
        if args.aa:
            if args.daemon_b:
                raise UsageError("--aa sets B to A; drop --daemon-b")
            args.daemon_b = args.daemon_a
        elif not args.daemon_b:
            raise UsageError("binary A/B needs --daemon-b (or --aa)")
        da = Daemon(args.daemon_a, args.allow_direct_io)
        db = Daemon(args.daemon_b, args.allow_direct_io)
        sides = []
        for key, d, lab in (("A", da, args.label_a), ("B", db, args.label_b)):
            sides.append({"key": key, "daemon": d, "mode": d.mode(),
                          "label": lab or "%s-%s" % (d.who(), d.mode())})
        if sides[0]["label"] == sides[1]["label"]:
            if args.aa:
                sides[1]["label"] += "'"
            else:
                sides[0]["label"] += "-a"
                sides[1]["label"] += "-b"
        for s in sides:
            if s["daemon"].is_upstream and args.queues > 1:
                raise UsageError("upstream virtiofsd supports only one request queue (--queues %d)" % args.queues)
    else:
        try:
            ma = ctl.parse_mode(args.a or "inline")
            if args.aa:
                if args.b:
                    raise UsageError("--aa sets B to A; drop --b")
                mb = ma
            else:
                mb = ctl.parse_mode(args.b or "pool:16")
        except ValueError as e:
            raise UsageError(str(e))
        # a setting one side makes would stay for the other side's runs
        for of, kind, what in ((ctl.pool_sched_of, "pool", "a policy (pool:N:batch / pool:N:normal)"),
                               (ctl.auto_slow_of, "auto", "a threshold (auto:N:slowUS)")):
            got = [of(m) for m in (ma, mb)]
            if (got[0] is None) != (got[1] is None) and all(m.startswith(kind) for m in (ma, mb)):
                raise UsageError("--a %s --b %s: give both %s sides %s or neither" % (ma, mb, kind, what))
        cmd = args.daemon if args.daemon else default_daemon_cmd(args.build_dir)
        d = Daemon(cmd, args.allow_direct_io)
        if not d.has_control:
            raise UsageError("live A/B needs a daemon with --control-socket (ours); %s has none. "
                             "Compare binaries with --daemon-a/--daemon-b instead" % d.exe)
        sides = [{"key": "A", "daemon": d, "mode": ma, "label": args.label_a or ma},
                 {"key": "B", "daemon": d, "mode": mb, "label": args.label_b or mb}]
        if sides[0]["label"] == sides[1]["label"]:
            sides[1]["label"] += "'"

    need_files = max(jobs.job_info(n)["nrfiles"] for n in job_names)
    # order: live = per job, A/B alternating ABBA over the reps;
    # binary = per boot (ABBA over reps), every job once per boot
    order = []
    if binary:
        for r in range(reps):
            for key in (("A", "B") if r % 2 == 0 else ("B", "A")):
                order.append({"boot_side": key, "rep": r,
                              "runs": [{"job": n, "side": key, "rep": r} for n in job_names]})
    else:
        runs = []
        for n in job_names:
            for r in range(reps):
                for key in (("A", "B") if r % 2 == 0 else ("B", "A")):
                    runs.append({"job": n, "side": key, "rep": r})
        order.append({"boot_side": None, "rep": None, "runs": runs})

    nruns = sum(len(b["runs"]) for b in order)
    est = len(order) * BOOT_ESTIMATE_S + nruns * (runtime + ramp + RUN_OVERHEAD_S)
    if args.out:
        out = os.path.abspath(args.out)
    else:
        stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
        name = "%s-%s-%s-vs-%s" % (stamp, args.profile, _sanitize(sides[0]["label"]),
                                   _sanitize(sides[1]["label"]))
        if args.aa:
            name += "-aa"
        out = os.path.join(REPO, "bench", "results", name)
    if os.path.exists(os.path.join(out, "raw.json")):
        raise UsageError("%s already holds a raw.json; choose another --out" % out)
    image_dir = args.image_dir or os.environ.get("VFS_GUEST_CACHE") or "/var/tmp/vfs-guest-cache"
    return {
        "args": args, "binary": binary, "sides": sides, "jobs": job_names, "reps": reps,
        "size": size, "size_bytes": size_bytes, "runtime": runtime, "ramp": ramp,
        "share_kind": share_kind, "share_base": share_base, "need_files": need_files,
        "order": order, "nruns": nruns, "estimate_s": est, "out": out, "image_dir": image_dir,
    }


def describe_plan(plan):
    a = plan["args"]
    A, B = plan["sides"]
    lines = []
    if plan["binary"]:
        lines.append("binary A/B: A = %s: %s" % (A["label"], A["daemon"].text()))
        lines.append("            B = %s: %s" % (B["label"], B["daemon"].text()))
    else:
        lines.append("live A/B on one daemon: A = %s, B = %s (control socket)" % (A["label"], B["label"]))
        lines.append("daemon: %s" % A["daemon"].text("CONTROL"))
    for s in plan["sides"]:
        for n in s["daemon"].notes:
            lines.append("note: side %s: %s" % (s["key"], n))
    lines.append("profile %s: %d jobs x 2 sides x %d reps = %d runs of %d s%s; files %d x %s; %s share (%s)"
                 % (a.profile, len(plan["jobs"]), plan["reps"], plan["nruns"], plan["runtime"],
                    " + %d s ramp" % plan["ramp"] if plan["ramp"] else "", plan["need_files"],
                    plan["size"], plan["share_kind"], plan["share_base"]))
    lines.append("guest: %d vCPUs, %s, accel %s, cpu %s, %d request queue(s) of %d; %d boot(s)"
                 % (a.vcpus, a.mem, a.accel, a.cpu, a.queues, a.queue_size, len(plan["order"])))
    lines.append("fio: direct=%s for psync (libaio always O_DIRECT, mmap never)%s"
                 % (1 if a.direct else 0, "; daemon -o allow_direct_io" if a.allow_direct_io else ""))
    lines.append("estimated time: ~%d min (TCG on a loaded 2-core machine)" % max(1, round(plan["estimate_s"] / 60)))
    lines.append("results: %s" % plan["out"])
    return "\n".join(lines)


# --------------------------------------------------------------------------
# host facts
# --------------------------------------------------------------------------

def _first_line(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        return (p.stdout or p.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def host_meminfo():
    return agent.meminfo(("MemTotal", "MemFree", "MemAvailable", "Cached",
                          "Dirty", "Shmem"))


def host_facts():
    u = platform.uname()
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {"hostname": socket.gethostname(), "kernel": u.release, "machine": u.machine,
            "cpus": os.cpu_count(), "mem_total_kb": host_meminfo().get("MemTotal_kb"),
            "loadavg_at_start": load}


def repo_facts():
    def git(*a):
        try:
            p = subprocess.run(["git", "-C", REPO] + list(a), capture_output=True, text=True, timeout=20)
            return p.stdout.strip() if p.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            return None
    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"path": REPO, "commit": commit, "dirty": bool(dirty) if dirty is not None else None}


def fs_type(path):
    """Filesystem type of the mount holding PATH (from /proc/mounts)."""
    path = os.path.realpath(path)
    best, kind = "", None
    try:
        with open("/proc/mounts") as f:
            for line in f:
                w = line.split()
                mnt = w[1].replace("\\040", " ")
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                    best, kind = mnt, w[2]
    except OSError:
        pass
    return kind


def image_facts(image_dir):
    out = {"dir": image_dir}
    try:
        with open(os.path.join(image_dir, "image.stamp")) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    out[k] = v
    except OSError:
        pass
    return out


# --------------------------------------------------------------------------
# the bench
# --------------------------------------------------------------------------

def fio_summary(fio):
    """IOPS, bytes/s, total I/Os, longest job runtime (s) over fio's jobs."""
    iops = bw = ios = 0.0
    runtime_ms = 0
    for j in fio.get("jobs", []):
        for d in ("read", "write", "trim"):
            x = j.get(d) or {}
            iops += x.get("iops", 0) or 0
            bw += x.get("bw_bytes", 0) or 0
            ios += x.get("total_ios", 0) or 0
        runtime_ms = max(runtime_ms, j.get("job_runtime", 0) or 0)
    return {"iops": iops, "bw_bytes": bw, "total_ios": int(ios), "runtime_s": runtime_ms / 1000.0}


def op_count(snap, opcode):
    return sum(o.get("count", 0) for q in snap.get("queues", []) for o in q.get("ops", [])
               if o.get("opcode") == opcode)


def layout_files_on_host(files_dir, n, size):
    """Create N fio files of SIZE bytes (kept when they already have that
    size, as fio itself would)."""
    os.makedirs(files_dir, exist_ok=True)
    chunk = os.urandom(1 << 20)
    created, kept = [], []
    for i in range(n):
        path = os.path.join(files_dir, jobs.FILE_FORMAT % i)
        try:
            if os.stat(path).st_size == size:
                kept.append(path)
                continue
        except FileNotFoundError:
            pass
        with open(path, "wb") as f:
            left = size
            while left > 0:
                left -= f.write(chunk[:min(left, len(chunk))])
            f.flush()
            os.fsync(f.fileno())
        created.append(path)
    return created, kept


class Bench:
    def __init__(self, plan, command_line):
        self.plan = plan
        self.args = plan["args"]
        self.out = plan["out"]
        self.sides = {s["key"]: s for s in plan["sides"]}
        self.seq = 0
        self.boot = -1
        self.guest = None
        self.workdir = None
        self.share = None
        self.share_created = False
        self.files_dir = None
        self.locked = False
        self.failed = False
        a = self.args
        cfg = {
            "ab": "binary" if plan["binary"] else "live",
            "a": None, "b": None, "aa": bool(a.aa),
            "profile": a.profile, "reps": plan["reps"], "order": "ABBA",
            "share": {"kind": plan["share_kind"], "path": None},
            "direct": bool(a.direct), "allow_direct_io": bool(a.allow_direct_io),
            "fio": {"version": None, "size": plan["size"], "size_bytes": plan["size_bytes"],
                    "runtime_s": plan["runtime"], "ramp_s": plan["ramp"], "bs": jobs.BS,
                    "iodepth": jobs.IODEPTH, "time_based": True, "libaio_direct": True,
                    "mmap_direct": False, "files": plan["need_files"], "prep": a.prep},
            "guest": {"kernel": None, "vcpus": a.vcpus, "mem": a.mem, "queues": a.queues,
                      "queue_size": a.queue_size, "accel": a.accel, "cpu": a.cpu, "fio": None,
                      "image": image_facts(plan["image_dir"])},
            "qemu": _first_line(["qemu-system-x86_64", "--version"]),
            "host": host_facts(),
            "host_drop_caches": bool(a.drop_host_caches),
            "guest_drop_caches": "sync; echo 3 > /proc/sys/vm/drop_caches before every run "
                                 "(fio's executable and libraries stay mapped by the agent)",
            "repo": repo_facts(),
            "notes": [],
            "jobs_selected": plan["jobs"],
            "started": iso(utcnow()), "finished": None,
            "command": command_line,
            "interrupted": False,
        }
        for s in plan["sides"]:
            d = s["daemon"]
            cfg["a" if s["key"] == "A" else "b"] = {
                "label": s["label"], "mode": s["mode"], "daemon": d.text(),
                "daemon_version": d.version.splitlines()[0] if d.version else None,
                "who": d.who(), "control_socket": d.has_control,
                "env": d.env}
            cfg["notes"] += ["side %s: %s" % (s["key"], n) for n in d.notes]
        self.raw = {
            "format": "vfs-bench-raw", "version": 1, "config": cfg,
            "jobs": [dict(jobs.job_info(n), jobfile=jobs.load(n)) for n in plan["jobs"]],
            "boots": [], "runs": [],
        }

    # --- output ----------------------------------------------------------------
    def write_raw(self):
        path = os.path.join(self.out, "raw.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.raw, f, separators=(",", ":"))
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    # --- set-up and tear-down --------------------------------------------------
    def setup(self):
        p = self.plan
        self.created_out = not os.path.exists(self.out)
        os.makedirs(self.out, exist_ok=True)
        os.makedirs(os.path.join(self.out, "jobs"), exist_ok=True)
        for n in p["jobs"]:
            with open(os.path.join(self.out, "jobs", n + ".fio"), "w") as f:
                f.write(jobs.load(n))
        if p["share_kind"] == "tmpfs":
            self.share = tempfile.mkdtemp(prefix="vfs-bench-share.", dir="/dev/shm")
            self.share_created = True
        elif p["share_kind"] == "disk":
            os.makedirs(p["share_base"], exist_ok=True)
            self.share = p["share_base"]
        else:
            self.share = p["share_base"]
        self.raw["config"]["share"]["path"] = self.share
        files_dir = os.path.join(self.share, FILES_DIR)
        need = p["need_files"] * p["size_bytes"]
        have = 0
        for i in range(p["need_files"]):
            try:
                have += os.stat(os.path.join(files_dir, jobs.FILE_FORMAT % i)).st_size
            except FileNotFoundError:
                pass
        st = os.statvfs(self.share)
        free = st.f_bavail * st.f_frsize
        if need - have > free:
            raise UsageError("the share %s has %.1f GiB free; the fio files need %.1f GiB more "
                             "(smaller --size, or another --share)" % (self.share, free / 2**30, (need - have) / 2**30))
        os.makedirs(files_dir, exist_ok=True)
        # one bench at a time per files directory (the disk share is a fixed path)
        self.lock = open(os.path.join(files_dir, ".vfs-bench.lock"), "w")
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError("another vfs-bench is using %s; wait for it or choose another --share" % files_dir)
        self.locked = True
        self.files_dir = files_dir
        self.workdir = tempfile.mkdtemp(prefix="vfs-bench.", dir="/var/tmp")
        self.raw["config"]["files_dir"] = files_dir
        self.raw["config"]["share"]["fs"] = fs_type(self.share)
        if self.args.prep == "host":
            t0 = time.monotonic()
            created, kept = layout_files_on_host(files_dir, p["need_files"], p["size_bytes"])
            self.raw["config"]["prep_result"] = {"where": "host", "created": len(created), "kept": len(kept),
                                                 "elapsed_s": round(time.monotonic() - t0, 3)}
            if created:
                say("laid out %d fio file(s) of %s in %s (%.1f s)" % (len(created), p["size"], files_dir,
                                                                         time.monotonic() - t0))

    def cleanup(self):
        if self.guest is not None:
            self.guest.kill()
            self.guest = None
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self.share_created and not self.args.keep_share:
            shutil.rmtree(self.share, ignore_errors=True)
        elif not self.locked:
            pass                # not ours to clean (another bench holds it)
        elif self.args.keep_share:
            say("fio files kept in %s" % self.files_dir)
        elif self.plan["share_kind"] == "disk":
            shutil.rmtree(self.files_dir, ignore_errors=True)
        else:
            say("fio files left in %s (your --share directory)" % self.files_dir)

    # --- boots -----------------------------------------------------------------
    def control_path(self, side_key):
        return os.path.join(self.workdir, "control-%s.sock" % side_key.lower())

    def start_boot(self, side_key):
        """Boot the guest on side_key's daemon (live: side A's, which is the
        same daemon as B's)."""
        self.boot += 1
        side = self.sides[side_key]
        d = side["daemon"]
        csock = self.control_path(side_key) if d.has_control else None
        log_dir = os.path.join(self.out, "logs", "boot-%d" % self.boot)
        p = self.plan
        a = self.args
        # generous: the agent's per-command timeouts catch hangs much earlier
        nruns = len(p["order"][0]["runs"]) if p["binary"] else p["nruns"]
        timeout = a.boot_timeout + nruns * (p["runtime"] + p["ramp"] + 300) + 600
        self.guest = Guest(share=self.share, daemon_argv=d.argv(csock), workdir=self.workdir,
                           log_dir=log_dir, queues=a.queues, queue_size=a.queue_size, vcpus=a.vcpus,
                           mem=a.mem, accel=a.accel, cpu=a.cpu, image_dir=p["image_dir"],
                           timeout=timeout, env={"VFSB_MOUNT": GUEST_MOUNT})
        rec = {"boot": self.boot, "side": side_key if p["binary"] else None,
               "label": side["label"] if p["binary"] else None,
               "daemon": d.text(csock), "log_dir": os.path.relpath(log_dir, self.out),
               "started": iso(utcnow()), "boot_s": None, "rc": None, "error": None}
        self.raw["boots"].append(rec)
        say("boot %d: %s" % (self.boot, d.text(csock)))
        t0 = time.monotonic()
        self.guest.start()
        hello = self.guest.connect(timeout=a.boot_timeout)
        rec["boot_s"] = round(time.monotonic() - t0, 1)
        u = self.guest.call("uname", timeout=180)
        rec["guest"] = {k: u.get(k) for k in ("release", "version", "cpus", "MemTotal_kb", "fio", "cmdline")}
        rec["agent"] = {k: hello.get(k) for k in ("agent_version", "port", "mount", "python")}
        cfg = self.raw["config"]
        cfg["guest"]["kernel"] = cfg["guest"]["kernel"] or u.get("release")
        cfg["guest"]["kernel_build"] = u.get("version")
        cfg["guest"]["mem_total_kb"] = u.get("MemTotal_kb")
        cfg["guest"]["fio"] = u.get("fio")
        cfg["fio"]["version"] = cfg["fio"]["version"] or u.get("fio")
        # fio and its ~60 libraries stay mapped by the agent, so dropping the
        # guest's caches before each run does not make fio re-read them over
        # 9p (seconds under TCG); the share's caches are dropped as before
        pin = self.guest.call("pin", programs=["fio"], timeout=300)
        rec["pinned"] = {"files": pin["files"], "bytes": pin["bytes"], "elapsed_s": pin["elapsed_s"]}
        say("boot %d: guest %s up in %.0f s (%s)" % (self.boot, u.get("release"), rec["boot_s"], u.get("fio")))
        if a.prep == "guest":
            t1 = time.monotonic()
            r = self.guest.call("prep", dir=FILES_DIR, nfiles=p["need_files"], size=p["size_bytes"],
                                format=jobs.FILE_FORMAT, timeout=3600)
            rec["prep"] = {"created": len(r["created"]), "kept": len(r["kept"]), "elapsed_s": r["elapsed_s"]}
            self.raw["config"]["prep_result"] = dict(rec["prep"], where="guest")
            if r["created"]:
                say("laid out %d fio file(s) of %s through the share (%.1f s)"
                    % (len(r["created"]), p["size"], time.monotonic() - t1))
        self.write_raw()
        return csock

    def guest_result(self, wait=10.0):
        """run-guest.sh's verdict once it has ended (it notices a dead
        daemon or QEMU within seconds), as text for an error message."""
        g = self.guest
        if g is None or g.proc is None:
            return ""
        try:
            g.proc.wait(wait)
        except subprocess.TimeoutExpired:
            return "; the guest is still running"
        lines = []
        try:
            with open(g.out_path, errors="replace") as f:
                lines = [l.rstrip() for l in f if "RESULT:" in l or "seccomp" in l or "killed" in l]
        except OSError:
            pass
        return "; run-guest.sh exit %d%s; logs in %s" % (
            g.proc.returncode, (": " + " / ".join(lines[-3:])) if lines else "", g.log_dir)

    def end_boot(self):
        rec = self.raw["boots"][-1]
        try:
            rc = self.guest.close()
            rec["rc"] = rc
            if rc != 0:
                rec["error"] = "run-guest.sh exit %d (see %s)" % (rc, rec["log_dir"])
                say("warning: boot %d ended with run-guest.sh exit %d; logs in %s"
                    % (rec["boot"], rc, os.path.join(self.out, rec["log_dir"])))
        except GuestError as e:
            rec["error"] = str(e)
            say("warning: boot %d did not end cleanly: %s" % (rec["boot"], str(e).splitlines()[0]))
        finally:
            self.guest = None
            rec["finished"] = iso(utcnow())
            self.write_raw()

    # --- one run ---------------------------------------------------------------
    def run_one(self, run, csock, mode_to_set):
        p = self.plan
        a = self.args
        side = self.sides[run["side"]]
        rec = {"job": run["job"], "side": run["side"], "label": side["label"], "rep": run["rep"],
               "seq": self.seq, "boot": self.boot, "mode": side["mode"],
               "fio": None, "stats_before": None, "stats_after": None, "error": None}
        self.seq += 1
        info = jobs.job_info(run["job"])
        env = {"VFSB_DIR": GUEST_MOUNT + "/" + FILES_DIR, "VFSB_SIZE": str(p["size_bytes"]),
               "VFSB_RUNTIME": str(p["runtime"]), "VFSB_RAMP": str(p["ramp"]),
               "VFSB_DIRECT": "1" if a.direct else "0"}
        rec["fio_env"] = env
        rec["direct"] = info["direct"] == "always" or (info["direct"] == "option" and a.direct)
        try:
            if mode_to_set:
                ans = ctl.set_mode(csock, mode_to_set)
                rec["mode_state"] = [q for q in ans.get("queues", []) if q.get("started")]
            if a.drop_host_caches:
                with open("/proc/sys/vm/drop_caches", "w") as f:
                    f.write("3\n")
            dc = self.guest.call("drop_caches", timeout=300)
            rec["guest_mem_after_drop"] = {k: v for k, v in dc.items() if k.endswith("_kb")}
            rec["host_mem_before"] = host_meminfo()
            rec["t_start"] = iso(utcnow())
            if csock:
                rec["stats_before"] = ctl.stats(csock)
            t0 = time.monotonic()
            r = self.guest.call("fio", name=run["job"], jobfile=jobs.load(run["job"]), env=env,
                                timeout=p["runtime"] + p["ramp"] + 300,
                                what="waiting for fio (%s, side %s)" % (run["job"], run["side"]))
            rec["host_elapsed_s"] = round(time.monotonic() - t0, 3)
            if csock:
                rec["stats_after"] = ctl.stats(csock)
            rec["t_end"] = iso(utcnow())
            rec["fio_rc"] = r.get("rc")
            rec["fio_elapsed_s"] = r.get("elapsed_s")
            if r.get("stderr"):
                rec["fio_stderr"] = r["stderr"][-4000:]
            if r.get("fio") is not None and r.get("rc") == 0:
                rec["fio"] = r["fio"]
                rec["fio_runtime_s"] = fio_summary(r["fio"])["runtime_s"]
            else:
                rec["fio_output"] = r.get("fio")
                rec["error"] = "fio exit %s%s: %s" % (
                    r.get("rc"), " (%s)" % r["parse_error"] if r.get("parse_error") else "",
                    (r.get("stderr") or r.get("stdout") or "").strip()[-300:])
        except ctl.ControlError as e:
            # without its control socket the daemon is most likely gone:
            # nothing more can be measured in this boot
            rec["error"] = "control socket: %s" % e
            self.raw["runs"].append(rec)
            self.write_raw()
            self.progress(rec)
            raise GuestError("control socket failed (%s)%s" % (e, self.guest_result()))
        except GuestError as e:
            rec["error"] = "guest: %s" % str(e).splitlines()[0]
            self.raw["runs"].append(rec)
            self.write_raw()
            self.progress(rec)
            raise
        self.raw["runs"].append(rec)
        self.write_raw()
        self.progress(rec)
        return rec

    def progress(self, rec):
        n = self.plan["nruns"]
        head = "[%*d/%d] %-24s %s %-10s rep %d" % (len(str(n)), rec["seq"] + 1, n, rec["job"], rec["side"],
                                                   rec["label"], rec["rep"])
        if rec["error"]:
            say(head + ": FAILED: " + rec["error"])
            self.failed = True
            return
        f = fio_summary(rec["fio"])
        extra = ""
        if rec["stats_before"] and rec["stats_after"]:
            dr = op_count(rec["stats_after"], "READ") - op_count(rec["stats_before"], "READ")
            dw = op_count(rec["stats_after"], "WRITE") - op_count(rec["stats_before"], "WRITE")
            extra = "  daemon READ %d WRITE %d" % (dr, dw)
        say("%s: %9.0f IOPS %7.2f MB/s  %d I/Os%s" % (head, f["iops"], f["bw_bytes"] / 1e6, f["total_ios"], extra))

    # --- the two kinds of A/B ----------------------------------------------------
    def run_live(self):
        block = self.plan["order"][0]
        csock = self.start_boot("A")
        # both modes must be accepted before anything is measured
        for key in ("A", "B"):
            try:
                ctl.set_mode(csock, self.sides[key]["mode"])
            except ctl.ControlError as e:
                raise UsageError("side %s: %s" % (key, e))
        for run in block["runs"]:
            self.run_one(run, csock, self.sides[run["side"]]["mode"])
        self.end_boot()

    def run_binary(self):
        for block in self.plan["order"]:
            key = block["boot_side"]
            csock = self.start_boot(key)
            for run in block["runs"]:
                self.run_one(run, csock, None)
            self.end_boot()


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------

def fallback_table(raw):
    """A minimal table when vfsbench.report is not available."""
    by = {}
    for r in raw["runs"]:
        if r.get("fio") and not r.get("error"):
            by.setdefault(r["job"], {}).setdefault(r["side"], []).append(fio_summary(r["fio"])["iops"])
    cfg = raw["config"]
    la, lb = cfg["a"]["label"], cfg["b"]["label"]
    lines = ["| workload | %s IOPS | %s IOPS | Δ %% |" % (la, lb), "|---|---:|---:|---:|"]
    for j in raw["jobs"]:
        s = by.get(j["name"], {})
        ma = sum(s["A"]) / len(s["A"]) if s.get("A") else None
        mb = sum(s["B"]) / len(s["B"]) if s.get("B") else None
        d = "%+.1f" % (100.0 * (mb - ma) / ma) if ma and mb is not None else "-"
        lines.append("| %s | %s | %s | %s |" % (j["name"], "%.0f" % ma if ma is not None else "-",
                                                "%.0f" % mb if mb is not None else "-", d))
    return "\n".join(lines) + "\n"


def render_report(out, raw):
    try:
        from . import report
    except ImportError as e:
        say("vfsbench.report is not available (%s); minimal table:" % e)
        return fallback_table(raw)
    return report.render(out)


# --------------------------------------------------------------------------
# entry
# --------------------------------------------------------------------------

def run(args, command_line):
    plan = make_plan(args)
    print(describe_plan(plan), flush=True)
    if args.dry_run:
        for i, b in enumerate(plan["order"]):
            print("boot %d%s:" % (i, " (side %s)" % b["boot_side"] if b["boot_side"] else ""))
            for r in b["runs"]:
                print("    %-26s %s rep %d" % (r["job"], r["side"], r["rep"]))
        return 0
    if os.geteuid() != 0:
        raise UsageError("needs root (the daemon sandboxes itself with namespaces; QEMU, drop_caches)")
    if not os.access(RUN_GUEST, os.X_OK):
        raise UsageError("missing %s" % RUN_GUEST)
    if not shutil.which("qemu-system-x86_64"):
        raise UsageError("qemu-system-x86_64 not found (apt-get install qemu-system-x86)")
    bench = Bench(plan, command_line)
    rc = 0
    t0 = time.monotonic()
    interrupted = False

    def on_term(signum, frame):
        raise KeyboardInterrupt()
    old = signal.signal(signal.SIGTERM, on_term)
    try:
        bench.setup()
        if plan["binary"]:
            bench.run_binary()
        else:
            bench.run_live()
    except KeyboardInterrupt:
        say("interrupted; keeping what was measured")
        bench.raw["config"]["interrupted"] = True
        interrupted = True
        rc = 130
    except GuestError as e:
        say("error: %s" % e)
        bench.raw["config"]["error"] = str(e).splitlines()[0]
        if bench.raw["boots"] and not bench.raw["boots"][-1].get("error"):
            bench.raw["boots"][-1]["error"] = str(e)
        rc = 1
    except UsageError:
        raise
    finally:
        signal.signal(signal.SIGTERM, old)
        bench.raw["config"]["finished"] = iso(utcnow())
        bench.raw["config"]["elapsed_s"] = round(time.monotonic() - t0, 1)
        if bench.raw["boots"]:
            bench.write_raw()
        elif getattr(bench, "created_out", False):
            shutil.rmtree(bench.out, ignore_errors=True)     # nothing was measured
        bench.cleanup()
    if bench.failed and rc == 0:
        rc = 1
    runs = bench.raw["runs"]
    if not runs:
        say("no run finished; nothing to report (%s)" % bench.out)
        return rc or 1
    text = render_report(bench.out, bench.raw)
    print()
    print(text.rstrip("\n"))
    print()
    for n in bench.raw["config"]["notes"]:
        say("note: " + n)
    say("%d runs in %.0f s%s; results in %s" % (len(runs), time.monotonic() - t0,
                                                " (interrupted)" if interrupted else "", bench.out))
    if os.path.exists(os.path.join(bench.out, "report.md")):
        say("report: %s" % os.path.join(bench.out, "report.md"))
    return rc
