"""Host side of one bench guest boot: starts tests/guest/run-guest.sh (the
daemon + QEMU + the guest agent), connects to the agent's virtio-serial
port (a QEMU unix-socket chardev) and exchanges commands with it.

Protocol: see agent.py.  Standard library only.
"""
import json
import os
import select
import signal
import socket
import subprocess
import time

MAGIC = b"VFSB1"
PORT_NAME = "vfsbench.agent"

HERE = os.path.dirname(os.path.abspath(__file__))
AGENT = os.path.join(HERE, "agent.py")
REPO = os.path.dirname(os.path.dirname(HERE))
RUN_GUEST = os.path.join(REPO, "tests", "guest", "run-guest.sh")


class GuestError(Exception):
    pass


def _tail(path, n=25):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 16384))
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join("    " + l for l in lines[-n:])
    except OSError:
        return "    (no %s)" % path


class Guest:
    """One boot.  start() returns at once; connect() waits for the agent's
    hello; call() runs one command; close() asks the agent to quit and waits
    for run-guest.sh; kill() stops everything."""

    def __init__(self, *, share, daemon_argv, workdir, log_dir, queues=1, queue_size=128,
                 vcpus=2, mem="2G", accel="tcg,thread=multi", cpu="max", image_dir=None,
                 timeout=3600, env=None):
        self.share = share
        self.daemon_argv = list(daemon_argv)
        self.workdir = workdir
        self.log_dir = log_dir
        self.queues, self.queue_size, self.vcpus, self.mem = queues, queue_size, vcpus, mem
        self.accel, self.cpu = accel, cpu
        self.image_dir = image_dir
        self.timeout = timeout
        self.env = dict(env or {})
        self.sock_path = os.path.join(workdir, "agent.sock")
        self.out_path = os.path.join(log_dir, "run-guest.log")
        self.proc = None
        self.sock = None
        self.buf = b""
        self.next_id = 1
        self.hello = None

    # --- life cycle ------------------------------------------------------------
    def argv(self):
        qa = ["-device", "virtio-serial-pci,id=vfsb-serial",
              "-chardev", "socket,id=vfsb-agent,path=%s,server=on,wait=off" % self.sock_path,
              "-device", "virtserialport,bus=vfsb-serial.0,chardev=vfsb-agent,name=" + PORT_NAME]
        a = [RUN_GUEST, "--share", self.share, "--script", AGENT, "--quiet",
             "--queues", str(self.queues), "--queue-size", str(self.queue_size),
             "--vcpus", str(self.vcpus), "--mem", str(self.mem),
             "--accel", self.accel, "--cpu", self.cpu,
             "--timeout", str(int(self.timeout)), "--log-dir", self.log_dir,
             "--env", "VFSB_PORT=" + PORT_NAME]
        if self.image_dir:
            a += ["--image-dir", self.image_dir]
        for k, v in sorted(self.env.items()):
            a += ["--env", "%s=%s" % (k, v)]
        for x in qa:
            a += ["--qemu-arg", x]
        return a + ["--"] + self.daemon_argv

    def start(self):
        os.makedirs(self.log_dir, exist_ok=True)
        try:
            os.unlink(self.sock_path)
        except FileNotFoundError:
            pass
        self._out = open(self.out_path, "wb")
        # own session: a Ctrl-C on the terminal reaches only us; we stop
        # run-guest.sh ourselves (its traps clean up QEMU and the daemon)
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def _check_alive(self, what):
        if self.proc is not None and self.proc.poll() is not None:
            out = _tail(self.out_path)
            msg = "the guest ended (run-guest.sh exit %d) while %s; run-guest output:\n%s\n" \
                  "console (%s):\n%s" % (self.proc.returncode, what, out,
                                         os.path.join(self.log_dir, "console.log"),
                                         _tail(os.path.join(self.log_dir, "console.log"), 15))
            if "daemon log" not in out:     # run-guest.sh shows it when the daemon failed
                msg += "\ndaemon log:\n" + _tail(os.path.join(self.log_dir, "daemon.log"), 15)
            raise GuestError(msg)

    def connect(self, timeout=300.0):
        """Connect to the agent socket and wait for the agent's hello."""
        deadline = time.monotonic() + timeout
        while self.sock is None:
            self._check_alive("waiting for QEMU's agent socket")
            if os.path.exists(self.sock_path):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.connect(self.sock_path)
                    self.sock = s
                    break
                except OSError:
                    s.close()
            if time.monotonic() > deadline:
                raise GuestError("QEMU did not create %s within %g s" % (self.sock_path, timeout))
            time.sleep(0.1)
        # The agent may start long after we connect: what we write waits in
        # QEMU until the guest opens the port, so one hello is enough.
        self.hello = self.call("hello", timeout=max(1.0, deadline - time.monotonic()),
                               what="waiting for the guest agent to start")
        return self.hello

    def close(self, timeout=120.0):
        """Ask the agent to quit (it unmounts the share, the guest powers
        off) and wait for run-guest.sh.  Returns its exit status."""
        try:
            if self.sock is not None:
                self.call("quit", timeout=30)
        finally:
            if self.sock is not None:
                self.sock.close()
                self.sock = None
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise GuestError("the guest did not power off within %g s after quit" % timeout)
        self._out.close()
        return rc

    def kill(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None and self.proc.poll() is None:
            # run-guest.sh's TERM trap kills QEMU's and the daemon's groups
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if hasattr(self, "_out") and not self._out.closed:
            self._out.close()

    # --- commands -------------------------------------------------------------
    def call(self, cmd, timeout=120.0, what=None, **args):
        """Run one agent command; returns its answer (a dict with ok true).
        Raises GuestError on a timeout, a dead guest or an error answer."""
        rid = self.next_id
        self.next_id += 1
        req = dict(args, id=rid, cmd=cmd)
        try:
            self.sock.sendall(json.dumps(req, separators=(",", ":")).encode() + b"\n")
        except OSError as e:
            self._check_alive("sending %r" % cmd)
            raise GuestError("agent socket: sending %r: %s" % (cmd, e))
        what = what or ("waiting for the agent's answer to %r" % cmd)
        deadline = time.monotonic() + timeout
        while True:
            msg = self._read_frame(deadline, what)
            if msg.get("fatal"):
                raise GuestError("guest agent: " + msg.get("error", "fatal error"))
            if msg.get("id") != rid:
                continue        # a stale answer (e.g. after a timeout)
            if not msg.get("ok"):
                raise GuestError("guest agent: %s failed: %s" % (cmd, msg.get("error")))
            return msg

    def _read_frame(self, deadline, what):
        while True:
            i = self.buf.find(MAGIC)
            if i > 0:
                self.buf = self.buf[i:]        # resynchronise on the magic
                continue
            if i < 0:
                self.buf = self.buf[-len(MAGIC):]
            nl = self.buf.find(b"\n")
            if i == 0 and nl > 0:
                try:
                    n = int(self.buf[len(MAGIC):nl])
                except ValueError:
                    self.buf = self.buf[1:]
                    continue
                if len(self.buf) >= nl + 1 + n + 1:
                    payload = self.buf[nl + 1:nl + 1 + n]
                    self.buf = self.buf[nl + 1 + n + 1:]
                    try:
                        return json.loads(payload)
                    except ValueError:
                        continue
            left = deadline - time.monotonic()
            if left <= 0:
                self._check_alive(what)
                raise GuestError("timeout %s" % what)
            r, _, _ = select.select([self.sock], [], [], min(left, 1.0))
            if not r:
                self._check_alive(what)
                continue
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                self._check_alive(what)
                time.sleep(0.2)
                self._check_alive(what)
                raise GuestError("agent socket closed by QEMU %s" % what)
            self.buf += chunk
