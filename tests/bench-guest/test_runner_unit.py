#!/usr/bin/env python3
"""bench-runner: the bench runner's parts that need no VM: the job files are
in sync with the matrix, job selection, mode parsing and control lines, the
run order (ABBA per job live, ABBA per boot binary), command-line errors, and
the agent protocol (agent.Agent against guest.Guest's frame reader over a
socketpair, with garbage on the line).  Exit 0 pass, 1 fail."""
import json
import os
import socket
import subprocess
import sys
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "bench"))
sys.dont_write_bytecode = True

from vfsbench import agent, ctl, guest, jobs  # noqa: E402

VFS_BENCH = os.path.join(REPO, "bench", "vfs-bench")


class Jobs(unittest.TestCase):
    def test_matrix(self):
        self.assertEqual(len(jobs.ALL_JOBS), 30)
        self.assertEqual(len(set(jobs.ALL_JOBS)), 30)

    def test_files_in_sync(self):
        for name in jobs.ALL_JOBS:
            with open(jobs.path(name)) as f:
                self.assertEqual(f.read(), jobs.render(name), name)

    def test_job_file_content(self):
        t = jobs.render("randrw-libaio-multi")
        self.assertIn("rw=randrw\n", t)
        self.assertIn("rwmixread=75\n", t)
        self.assertIn("direct=1\n", t)
        self.assertIn("iodepth=16\n", t)
        self.assertEqual(t.count("[randrw-libaio-multi]"), 4)
        for i in range(4):
            self.assertIn("filename=f.%d\n" % i, t)
        t = jobs.render("read-mmap-single")
        self.assertIn("direct=0\n", t)
        self.assertEqual(t.count("[read-mmap-single]"), 1)
        self.assertIn("direct=${VFSB_DIRECT}", jobs.render("write-psync-single"))
        for v in ("VFSB_DIR", "VFSB_SIZE", "VFSB_RUNTIME", "VFSB_RAMP"):
            self.assertIn("${%s}" % v, t)
        self.assertIn("time_based=1", t)

    def test_select(self):
        self.assertEqual(jobs.select("randread-psync-single"), ["randread-psync-single"])
        self.assertEqual(jobs.select("seqread-libaio-*"), ["read-libaio-single", "read-libaio-multi"])
        self.assertEqual(len(jobs.select("randrw")), 6)
        self.assertEqual(len(jobs.select("*-multi")), 15)
        self.assertEqual(jobs.select("randwrite-mmap-multi, read-psync-single"),
                         ["read-psync-single", "randwrite-mmap-multi"])    # matrix order
        for bad in ("nomatch", "", "randread-foo-*"):
            with self.assertRaises(ValueError):
                jobs.select(bad)

    def test_profiles(self):
        for name, p in jobs.PROFILES.items():
            for j in p["jobs"]:
                jobs.job_info(j)
            jobs.parse_size(p["size"])
        self.assertEqual(len(jobs.PROFILES["standard"]["jobs"]), 30)
        self.assertEqual(jobs.PROFILES["seed"]["size"], "4G")
        self.assertEqual(jobs.PROFILES["seed"]["runtime_s"], 20)
        self.assertEqual(jobs.PROFILES["seed"]["reps"], 3)

    def test_parse_size(self):
        self.assertEqual(jobs.parse_size("64M"), 64 << 20)
        self.assertEqual(jobs.parse_size("4G"), 4 << 30)
        self.assertEqual(jobs.parse_size("4GiB"), 4 << 30)
        for bad in ("12x", "", "100k", "-1M"):
            with self.assertRaises(ValueError):
                jobs.parse_size(bad)


class Modes(unittest.TestCase):
    def test_lines(self):
        self.assertEqual(ctl.mode_line("inline"), "mode set inline all")
        self.assertEqual(ctl.mode_line("pool:16"), "mode set pool 16 all")
        self.assertEqual(ctl.mode_line("auto"), "mode set auto all")
        self.assertEqual(ctl.mode_line("auto:3"), "mode set auto 3 all")
        self.assertEqual(ctl.mode_line("auto:3:slow40"), "mode set auto 3 all")

    def test_bad(self):
        for bad in ("pool", "pool:0", "pool:1025", "pool:x", "inline:2", "", "INLINE"):
            with self.assertRaises(ValueError):
                ctl.parse_mode(bad)


def dry_run(*args):
    p = subprocess.run([VFS_BENCH, "run", "--dry-run", "--daemon", "/bin/true"] + list(args),
                       capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


class Cli(unittest.TestCase):
    def test_help(self):
        p = subprocess.run([VFS_BENCH, "run", "--help"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0)
        for opt in ("--profile", "--share", "--a MODE", "--b MODE", "--aa", "--reps", "--jobs", "--daemon CMD",
                    "--daemon-a", "--daemon-b", "--direct", "--allow-direct-io", "--accel", "--cpu", "--vcpus",
                    "--mem", "--queues", "--queue-size", "--out", "--image-dir"):
            self.assertIn(opt, p.stdout)
        p = subprocess.run([VFS_BENCH, "--help"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0)
        for c in ("run", "report", "compare"):
            self.assertIn(c, p.stdout)

    def test_errors(self):
        cases = [
            (["--a", "bogus"], "bad mode"),
            (["--a", "auto:16:slow0"], "bad mode"),
            (["--a", "auto:16:slow10", "--b", "auto:16"], "give both auto sides a threshold"),
            (["--aa", "--b", "inline"], "--aa sets B to A"),
            (["--jobs", "nomatch"], "matches none"),
            (["--share", "/nonexistent/dir"], "not a directory"),
            (["--queue-size", "100"], "power of two"),
            (["--reps", "0"], "--reps"),
            (["--size", "12x"], "bad size"),
        ]
        for args, msg in cases:
            # /bin/true has no control socket: errors that come first must win
            rc, out, err = dry_run(*args)
            self.assertEqual(rc, 2, args)
            self.assertIn(msg, err, args)
        rc, out, err = dry_run()
        self.assertEqual(rc, 2)
        self.assertIn("control-socket", err)
        p = subprocess.run([VFS_BENCH, "run", "--dry-run", "--daemon-a", "/bin/true", "--a", "inline"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn("drop --a/--b", p.stderr)
        p = subprocess.run([VFS_BENCH, "run", "--dry-run", "--daemon-a", "/bin/true"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--daemon-b", p.stderr)
        p = subprocess.run([VFS_BENCH, "report", "/nonexistent"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)

    def order(self, out):
        boots, cur = [], None
        for line in out.splitlines():
            if line.startswith("boot "):
                cur = []
                boots.append(cur)
            elif line.startswith("    ") and cur is not None:
                name, side, _, rep = line.split()
                cur.append((name, side, int(rep)))
        return boots

    def test_binary_order(self):
        p = subprocess.run([VFS_BENCH, "run", "--dry-run", "--daemon-a", "/bin/true --thread-pool-size=4",
                            "--daemon-b", "/bin/true", "--reps", "3", "--jobs", "randread-psync-*"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        boots = self.order(p.stdout)
        self.assertEqual([b[0][1] for b in boots], ["A", "B", "B", "A", "A", "B"])
        for b in boots:
            self.assertEqual([r[0] for r in b], ["randread-psync-single", "randread-psync-multi"])
            self.assertEqual(len({r[1] for r in b}), 1)
        self.assertIn("true-pool:4", p.stdout)


class LiveOrder(unittest.TestCase):
    def test_live_order(self):
        from vfsbench import runner
        import argparse
        ap = argparse.ArgumentParser()
        runner.add_run_args(ap)
        a = ap.parse_args(["--reps", "3", "--jobs", "read-psync-single,randwrite-libaio-multi",
                           "--out", "/nonexistent/x"])
        # a fake daemon with a control socket: bypass the probe
        orig = runner.Daemon.__init__

        def fake(self, cmd, allow_direct_io=False):
            orig(self, ["/bin/true"], allow_direct_io)
            self.has_control = True
        runner.Daemon.__init__ = fake
        try:
            a.daemon = "/bin/true"
            plan = runner.make_plan(a)
        finally:
            runner.Daemon.__init__ = orig
        self.assertEqual(len(plan["order"]), 1)
        runs = plan["order"][0]["runs"]
        self.assertEqual(len(runs), 2 * 2 * 3)
        for job in ("read-psync-single", "randwrite-libaio-multi"):
            sides = [(r["side"], r["rep"]) for r in runs if r["job"] == job]
            self.assertEqual(sides, [("A", 0), ("B", 0), ("B", 1), ("A", 1), ("A", 2), ("B", 2)])
        self.assertEqual(plan["need_files"], 4)
        self.assertEqual([s["label"] for s in plan["sides"]], ["inline", "pool:16"])


class Protocol(unittest.TestCase):
    def test_agent_round_trip(self):
        a_sock, h_sock = socket.socketpair()
        chan = agent.Channel("/dev/fake", fd=a_sock.fileno())
        ag = agent.Agent(chan, "/mnt", "myfs")
        t = threading.Thread(target=ag.serve, daemon=True)
        t.start()
        g = guest.Guest(share="/", daemon_argv=["x"], workdir="/tmp", log_dir="/tmp")
        g.sock = h_sock
        h = g.call("hello", timeout=10)
        self.assertEqual(h["agent_version"], agent.AGENT_VERSION)
        self.assertEqual(h["mount"], "/mnt")
        r = g.call("run", argv=["sh", "-c", "printf 'a\\nb'; echo err >&2; exit 3"], timeout=10)
        self.assertEqual(r["rc"], 3)
        self.assertEqual(r["stdout"], "a\nb")
        self.assertEqual(r["stderr"], "err\n")
        with self.assertRaises(guest.GuestError) as cm:
            g.call("nonsense", timeout=10)
        self.assertIn("unknown command", str(cm.exception))
        # noise before a frame, a stale answer and a frame split across reads
        # are all tolerated by the host's reader
        h_sock.sendall(b"not json\n")                      # answered with id null
        h_sock.sendall(b'{"id": 999, "cmd": "hello"}\n')    # an answer nobody waits for
        self.assertEqual(g.call("hello", timeout=10)["id"], g.next_id - 1)
        r = g.call("run", argv=["sh", "-c", "head -c 200000 /dev/zero | tr '\\0' x"], timeout=10)
        self.assertEqual(len(r["stdout"]), agent.TAIL)
        q = g.call("quit", timeout=10)
        self.assertTrue(q["bye"])
        t.join(5)
        self.assertFalse(t.is_alive())
        a_sock.close()
        h_sock.close()

    def test_reader_resync(self):
        a_sock, h_sock = socket.socketpair()
        g = guest.Guest(share="/", daemon_argv=["x"], workdir="/tmp", log_dir="/tmp")
        g.sock = h_sock
        payload = json.dumps({"id": 7, "ok": True, "v": "ü" * 10}).encode()
        a_sock.sendall(b"garbage VFSB\n" + b"VFSB1 " + str(len(payload)).encode() + b"\n" + payload[:5])
        a_sock.sendall(payload[5:] + b"\n")
        import time
        msg = g._read_frame(time.monotonic() + 5, "test")
        self.assertEqual(msg["id"], 7)
        self.assertEqual(msg["v"], "ü" * 10)
        a_sock.close()
        h_sock.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
