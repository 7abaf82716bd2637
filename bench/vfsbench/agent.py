#!/usr/bin/env python3
"""vfs-bench guest agent: runs inside the bench guest, takes commands from
the host over a virtio-serial port and answers on the same port.

The port, not the virtio-fs share, is the channel on purpose: the daemon's
counters measure the share's traffic, and the agent must add none of it
(the agent itself lives on the read-only 9p host root).

Started by tests/guest/run-guest.sh as the guest program (chrooted in the
host root).  Environment: VFS_TAG (virtio-fs tag), VFSB_MOUNT (mount point,
default /mnt), VFSB_PORT (virtio-serial port name, default vfsbench.agent).

Protocol (see runner/guest.py for the host side):
  host -> guest   one JSON object per line: {"id": N, "cmd": "...", ...}
  guest -> host   frames: b"VFSB1 <length>\\n" + <length> bytes of JSON + b"\\n"
                  the JSON is {"id": N, "ok": true, ...} or
                  {"id": N, "ok": false, "error": "..."}
Commands: hello, uname, drop_caches, pin, fio, prep, run, quit.
Python 3 standard library only (the guest runs the host's python3).
"""
import glob
import json
import mmap
import os
import shutil
import subprocess
import sys
import time
import traceback

AGENT_VERSION = 1
MAGIC = b"VFSB1"
WORK = "/tmp/vfsb"          # guest tmpfs: job files and fio output
TAIL = 16384                # bytes of stdout/stderr sent back


def log(msg):
    # the console (ttyS0): visible in console.log, never on the channel
    print("vfsb-agent: " + msg, file=sys.stderr, flush=True)


def find_port(name, timeout=30.0):
    """/dev node of the virtio-serial port called NAME (the port's name
    comes from QEMU's virtserialport name=; udev is absent, so look it up
    in sysfs and use the devtmpfs node of the same name)."""
    deadline = time.monotonic() + timeout
    while True:
        for p in glob.glob("/sys/class/virtio-ports/*/name"):
            try:
                with open(p) as f:
                    if f.read().strip() == name:
                        dev = "/dev/" + os.path.basename(os.path.dirname(p))
                        if os.path.exists(dev):
                            return dev
            except OSError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError("no virtio-serial port named %r (is virtio_console loaded? "
                               "ports: %s)" % (name, glob.glob("/sys/class/virtio-ports/*")))
        time.sleep(0.1)


class Channel:
    def __init__(self, dev, fd=None):
        self.dev = dev
        self.fd = os.open(dev, os.O_RDWR) if fd is None else fd
        self.buf = b""

    def read_line(self):
        while b"\n" not in self.buf:
            data = os.read(self.fd, 65536)
            if not data:
                # no host connected (or it went away): the port reads 0
                # at once instead of blocking, so poll gently
                time.sleep(0.05)
                continue
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def send(self, obj):
        payload = json.dumps(obj, separators=(",", ":")).encode()
        frame = MAGIC + b" %d\n" % len(payload) + payload + b"\n"
        view = memoryview(frame)
        while view:
            try:
                n = os.write(self.fd, view)
            except InterruptedError:
                continue
            view = view[n:]


def tail(b):
    if isinstance(b, bytes):
        b = b.decode("utf-8", "replace")
    return b[-TAIL:]


MEMINFO_KEYS = ("MemTotal", "MemFree", "MemAvailable", "Cached", "Dirty", "Writeback")


def meminfo(keys=MEMINFO_KEYS):
    """The /proc/meminfo lines named in @keys, as {KEY_kb: int} (also used
    by the runner on the host)."""
    out = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                k, v = line.split(":", 1)
                if k in keys:
                    out[k + "_kb"] = int(v.split()[0])
    except OSError:
        pass
    return out


class Agent:
    def __init__(self, chan, mnt, tag):
        self.chan = chan
        self.mnt = mnt
        self.tag = tag
        self.seq = 0
        self.pinned = {}

    # --- commands -----------------------------------------------------------
    def cmd_hello(self, req):
        return {"agent_version": AGENT_VERSION, "port": self.chan.dev, "mount": self.mnt,
                "tag": self.tag, "python": sys.version.split()[0], "pid": os.getpid()}

    def cmd_uname(self, req):
        u = os.uname()
        with open("/proc/cmdline") as f:
            cmdline = f.read().strip()
        r = {"sysname": u.sysname, "release": u.release, "version": u.version,
             "machine": u.machine, "cpus": os.cpu_count(), "cmdline": cmdline}
        r.update(meminfo())
        try:
            r["fio"] = subprocess.run(["fio", "--version"], capture_output=True,
                                      text=True, timeout=120).stdout.strip()
        except (OSError, subprocess.SubprocessError) as e:
            r["fio"] = None
            r["fio_error"] = str(e)
        return r

    def cmd_drop_caches(self, req):
        t0 = time.monotonic()
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        r = {"elapsed_s": round(time.monotonic() - t0, 4)}
        r.update(meminfo())
        return r

    def cmd_prep(self, req):
        """Lay out the fio files: NFILES files of SIZE bytes named
        FORMAT % i in DIR (relative to the mount).  A file that already has
        the right size is kept (fio would reuse it too)."""
        d = os.path.join(self.mnt, req.get("dir", "."))
        nfiles = int(req["nfiles"])
        size = int(req["size"])
        fmt = req.get("format", "f.%d")
        os.makedirs(d, exist_ok=True)
        t0 = time.monotonic()
        chunk = os.urandom(1 << 20)
        created, kept = [], []
        for i in range(nfiles):
            path = os.path.join(d, fmt % i)
            try:
                if os.stat(path).st_size == size:
                    kept.append(path)
                    continue
            except FileNotFoundError:
                pass
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                left = size
                while left > 0:
                    n = os.write(fd, chunk[:min(left, len(chunk))])
                    left -= n
                os.fsync(fd)
            finally:
                os.close(fd)
            created.append(path)
        os.sync()
        return {"created": created, "kept": kept, "elapsed_s": round(time.monotonic() - t0, 3)}

    def cmd_fio(self, req):
        """Run fio on a job file (text sent by the host, written to the
        guest's tmpfs) with --output-format=json; ENV goes to fio's
        environment for the job file's ${VAR} substitutions."""
        self.seq += 1
        os.makedirs(WORK, exist_ok=True)
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in req.get("name", "job"))
        jobpath = os.path.join(WORK, "%04d-%s.fio" % (self.seq, name))
        outpath = os.path.join(WORK, "%04d-%s.json" % (self.seq, name))
        if "jobfile" in req:
            with open(jobpath, "w") as f:
                f.write(req["jobfile"])
        elif "path" in req:
            jobpath = req["path"]
        else:
            raise ValueError("fio needs 'jobfile' (text) or 'path'")
        env = dict(os.environ)
        env.update({str(k): str(v) for k, v in req.get("env", {}).items()})
        argv = ["fio", "--output-format=json", "--output=" + outpath]
        argv += [str(a) for a in req.get("args", [])]
        argv.append(jobpath)
        timeout = float(req.get("timeout", 600))
        t0 = time.monotonic()
        try:
            p = subprocess.run(argv, env=env, capture_output=True, timeout=timeout)
            rc, so, se = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            rc, so, se = None, e.stdout or b"", (e.stderr or b"") + b"\n[agent: fio timed out]"
        elapsed = time.monotonic() - t0
        fio_out, parse_error = None, None
        try:
            with open(outpath, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            # fio may print notes before the JSON document
            start = text.find("{")
            if start < 0:
                raise ValueError("no JSON object in fio's output")
            fio_out = json.loads(text[start:])
        except (OSError, ValueError) as e:
            parse_error = str(e)
        for p_ in (outpath,):
            try:
                os.unlink(p_)
            except OSError:
                pass
        return {"rc": rc, "fio": fio_out, "parse_error": parse_error, "argv": argv,
                "stdout": tail(so), "stderr": tail(se), "elapsed_s": round(elapsed, 3)}

    def cmd_pin(self, req):
        """Keep PROGRAMS (default fio) and their shared libraries in the
        guest page cache across drop_caches: map every page and touch it
        (drop_caches leaves mapped pages alone).  Without this each fio run
        re-reads ~60 libraries over 9p after the drop, seconds under TCG.
        The share is not involved: its caches are still dropped."""
        t0 = time.monotonic()
        files = []
        for prog in req.get("programs", ["fio"]):
            path = shutil.which(prog)
            if not path:
                raise ValueError("%s not found in PATH" % prog)
            files.append(os.path.realpath(path))
            p = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=120)
            for line in p.stdout.splitlines():
                for w in line.split():
                    if w.startswith("/") and os.path.exists(w):
                        files.append(os.path.realpath(w))
        total = 0
        for f in sorted(set(files)):
            if f in self.pinned:
                continue
            with open(f, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size == 0:
                    continue
                m = mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ)
            s = 0
            for off in range(0, size, mmap.PAGESIZE):
                s += m[off]
            self.pinned[f] = m
            total += size
        return {"files": len(self.pinned), "bytes": total, "elapsed_s": round(time.monotonic() - t0, 3)}

    def cmd_run(self, req):
        argv = [str(a) for a in req["argv"]]
        timeout = float(req.get("timeout", 120))
        try:
            p = subprocess.run(argv, capture_output=True, timeout=timeout)
            return {"rc": p.returncode, "stdout": tail(p.stdout), "stderr": tail(p.stderr)}
        except subprocess.TimeoutExpired as e:
            return {"rc": None, "stdout": tail(e.stdout or b""), "stderr": "timed out"}

    def cmd_quit(self, req):
        return {"bye": True}

    # --- loop ------------------------------------------------------------------
    def serve(self):
        while True:
            line = self.chan.read_line().strip()
            if not line:
                continue
            rid = None
            try:
                req = json.loads(line)
                rid = req.get("id")
                fn = getattr(self, "cmd_" + str(req.get("cmd")), None)
                if fn is None:
                    raise ValueError("unknown command %r" % req.get("cmd"))
                res = fn(req)
                res.update({"id": rid, "ok": True})
            except Exception as e:   # every error goes back to the host
                res = {"id": rid, "ok": False, "error": "%s: %s" % (type(e).__name__, e),
                       "trace": traceback.format_exc()[-4000:]}
            self.chan.send(res)
            if res.get("bye"):
                return 0


def main():
    tag = os.environ.get("VFS_TAG", "myfs")
    mnt = os.environ.get("VFSB_MOUNT", "/mnt")
    port_name = os.environ.get("VFSB_PORT", "vfsbench.agent")
    dev = find_port(port_name)
    log("port %s is %s" % (port_name, dev))
    chan = Channel(dev)
    r = subprocess.run(["mount", "-t", "virtiofs", tag, mnt], capture_output=True, text=True)
    if r.returncode != 0:
        # tell the host why instead of leaving it waiting for a hello
        msg = "mount -t virtiofs %s %s failed: %s" % (tag, mnt, r.stderr.strip())
        log(msg)
        chan.send({"id": None, "ok": False, "fatal": True, "error": msg})
        return 1
    rc = Agent(chan, mnt, tag).serve()
    os.sync()
    r = subprocess.run(["umount", mnt], capture_output=True, text=True)
    if r.returncode != 0:
        log("umount %s failed: %s" % (mnt, r.stderr.strip()))
        rc = rc or 1
    log("exit %d" % rc)
    return rc


if __name__ == "__main__":
    sys.exit(main())
