#!/usr/bin/env python3
"""vfs-load and vfs-ab (bench/loadgen.c) against real daemons: every
workload completes the requests it was asked for with no errors, through
both ways the driver waits (a thread with one queue sleeps in read() on the
call eventfd, one with several queues in poll()); a daemon that dies or
stops answering mid-run is reported, not waited for forever.

  test_loadgen.py VFS_LOAD VFS_AB OURS [UPSTREAM]
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

VFS_LOAD = VFS_AB = OURS = UPSTREAM = None


def daemon_cmd(binary, share, pool=0):
    return [binary, "-o", "source=" + share, "-o", "cache=auto",
            "--thread-pool-size=%d" % pool]


def serving_daemons(share):
    """PIDs of daemon processes serving @share (ours forks a sandboxed
    child, upstream does not), found by their command line."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"virtiofsd" and \
                ("source=" + share).encode() in argv:
            pids.append(int(d))
    return pids


class Share:
    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="loadgen-share-", dir="/dev/shm")
        return self.dir

    def __exit__(self, *exc):
        for pid in serving_daemons(self.dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["rm", "-rf", self.dir], check=False)


def load(args, daemon, timeout=120):
    return subprocess.run([VFS_LOAD, "--json"] + args + ["--"] + daemon,
                          capture_output=True, text=True, timeout=timeout)


class Workloads(unittest.TestCase):
    def run_ok(self, args, daemon):
        p = load(args, daemon)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def check(self, daemon, rw, depth, queues=1, threads=None, extra=()):
        args = ["--rw=" + rw, "--depth=%d" % depth, "--queues=%d" % queues,
                "--requests=3000", "--size=4m"] + list(extra)
        if threads:
            args.append("--threads=%d" % threads)
        j = self.run_ok(args, daemon)
        # meta releases every file it opened, even past the count
        self.assertGreaterEqual(j["total"]["requests"], 3000, j)
        self.assertEqual(j["total"]["errors"], 0, j)
        self.assertEqual(sum(o["requests"] for o in j["ops"].values()),
                         j["total"]["requests"], j)
        return j

    def test_ours_inline_and_pool(self):
        with Share() as share:
            for pool in (0, 4):
                for rw in ("randread", "randwrite", "randrw", "meta"):
                    for depth in (1, 16):
                        with self.subTest(pool=pool, rw=rw, depth=depth):
                            self.check(daemon_cmd(OURS, share, pool), rw, depth)

    def test_ours_queues_per_thread(self):
        # two queues on one driver thread: the poll() wait
        with Share() as share:
            for depth in (1, 8):
                with self.subTest(depth=depth):
                    self.check(daemon_cmd(OURS, share), "randread", depth,
                               queues=2, threads=1)
                    self.check(daemon_cmd(OURS, share), "randwrite", depth,
                               queues=2, threads=2)

    def test_spin(self):
        with Share() as share:
            self.check(daemon_cmd(OURS, share), "randread", 1, extra=["--spin"])

    def test_upstream(self):
        if not UPSTREAM:
            self.skipTest("no upstream virtiofsd")
        with Share() as share:
            for pool in (0, 4):
                for rw in ("randread", "randwrite"):
                    with self.subTest(pool=pool, rw=rw):
                        self.check(daemon_cmd(UPSTREAM, share, pool), rw, 4)

    def test_calls_counted(self):
        # depth 1 waits for every completion: the daemon's calls are read
        with Share() as share:
            p = subprocess.run([VFS_LOAD, "--rw=randread", "--requests=2000",
                                "--size=4m", "--"] + daemon_cmd(OURS, share),
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            line = [ln for ln in p.stdout.splitlines() if ln.startswith("kicks")]
            self.assertTrue(line, p.stdout)
            calls = int(line[0].split("calls ")[1].split(",")[0])
            self.assertGreater(calls, 0, line[0])


class DaemonFailure(unittest.TestCase):
    """The driver must notice a dead or stuck daemon in every wait mode."""

    def finish(self, p, timeout):
        try:
            return p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            self.fail("vfs-load still running after %d s" % timeout)

    def start(self, share, extra):
        return subprocess.Popen(
            [VFS_LOAD, "--rw=randread", "--time=60", "--ramp=0", "--size=4m"] +
            extra + ["--"] + daemon_cmd(OURS, share),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_serving(self, share):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pids = serving_daemons(share)
            if pids:
                time.sleep(0.5)     # let requests flow
                return serving_daemons(share)
            time.sleep(0.05)
        self.fail("daemon did not start")

    def test_killed(self):
        cases = {"read-wait": ["--depth=1"], "read-wait-d8": ["--depth=8"],
                 "poll-wait": ["--queues=2", "--threads=1"], "spin": ["--spin"]}
        for name, extra in cases.items():
            with self.subTest(name), Share() as share:
                p = self.start(share, extra)
                for pid in self.wait_serving(share):
                    os.kill(pid, signal.SIGKILL)
                t0 = time.monotonic()
                out, err = self.finish(p, 30)
                self.assertNotEqual(p.returncode, 0, err)
                self.assertIn("daemon disconnected", err)
                # long before the 60 s run would have ended
                self.assertLess(time.monotonic() - t0, 20, err)

    def test_stopped(self):
        # SIGSTOP: the socket stays open, completions stop coming
        with Share() as share:
            p = self.start(share, ["--depth=4"])
            pids = self.wait_serving(share)
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            try:
                out, err = self.finish(p, 40)
            finally:
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            self.assertNotEqual(p.returncode, 0, err)
            self.assertIn("requests stuck for", err)


class AB(unittest.TestCase):
    def test_ab_ratio(self):
        with Share() as share:
            a = " ".join(daemon_cmd(OURS, share, 0))
            b = " ".join(daemon_cmd(OURS, share, 4))
            p = subprocess.run([VFS_AB, "--rw=randread", "--depth=4", "--runs=1",
                                "--time=0.3", "--ramp=0.1", "--size=4m", "--json",
                                "-A", a, "-B", b],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr)
            j = json.loads(p.stdout)
            r = j["ratios_b_over_a"]["req/s"]
            self.assertGreater(r["mean_a"], 0, j)
            self.assertGreater(r["mean_b"], 0, j)
            # one pair: the ratio is B's req/s over A's
            self.assertAlmostEqual(r["ratio_mean"], r["mean_b"] / r["mean_a"],
                                   delta=0.01)


if __name__ == "__main__":
    VFS_LOAD, VFS_AB, OURS = sys.argv[1:4]
    if len(sys.argv) > 4 and os.access(sys.argv[4], os.X_OK):
        UPSTREAM = sys.argv[4]
    unittest.main(argv=sys.argv[:1], verbosity=2)
